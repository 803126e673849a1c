import { Redis } from 'ioredis';
import { UserError } from '../config/errors.ts';
import { childLogger } from '../log/logger.ts';

const log = childLogger('redis');

/** Where a URL points, without its password (for log lines and messages). */
export function redisWhere(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '6379'}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return 'the configured Redis';
  }
}

/**
 * One line when Redis goes away and one when it is back, however many connections (ours and BullMQ's)
 * notice it: every client reports here, and only a change of state is logged.
 */
export class ConnectionWatch {
  private down = false;
  constructor(private readonly where: string) {}

  error(err: unknown): void {
    if (this.down) return;
    this.down = true;
    log.warn(
      { err, redis: this.where },
      'Redis is unreachable; reconnecting with back-off (jobs wait in Redis, nothing is lost)',
    );
  }

  ready(): void {
    if (!this.down) return;
    this.down = false;
    log.info({ redis: this.where }, 'Redis is reachable again');
  }

  watch<T extends { on(event: string, fn: (...args: never[]) => void): unknown }>(emitter: T): T {
    emitter.on('error', (e: unknown) => this.error(e));
    emitter.on('ready', () => this.ready());
    return emitter;
  }
}

/** Back-off between reconnect attempts: 100 ms doubling to 5 s, for ever (BullMQ needs its connections back). */
export function retryStrategy(times: number): number {
  return Math.min(100 * 2 ** Math.min(times, 6), 5000);
}

/** Connection options for every client (ours and the ones BullMQ opens). */
export function connectionOptions(url: string): {
  url: string;
  maxRetriesPerRequest: null;
  enableReadyCheck: boolean;
  retryStrategy: (times: number) => number;
} {
  return { url, maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy };
}

export function connect(url: string, watch: ConnectionWatch): Redis {
  const { url: _u, ...opts } = connectionOptions(url);
  return watch.watch(new Redis(url, opts));
}

/**
 * BullMQ keeps jobs as ordinary keys: a Redis that evicts keys under memory pressure silently deletes
 * jobs. Refuse such a server before anything is queued on it.
 */
export async function checkEvictionPolicy(client: Redis, url: string): Promise<void> {
  let info: string;
  try {
    info = await Promise.race([
      client.info('memory'),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 10 s')), 10_000).unref()),
    ]);
  } catch (e) {
    throw new UserError(
      `cannot reach Redis at ${redisWhere(url)} (REDIS_URL): ${(e as Error).message}. Start Redis or fix REDIS_URL, or unset REDIS_URL to use the embedded SQLite queue`,
    );
  }
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (policy && policy !== 'noeviction') {
    throw new UserError(
      `Redis at ${redisWhere(url)} has maxmemory-policy ${policy}, which deletes keys (queued jobs) under memory pressure. ` +
        'BullMQ needs "maxmemory-policy noeviction": set it in redis.conf (and "appendonly yes" so a restart keeps the queue), or run CONFIG SET maxmemory-policy noeviction, then start again',
    );
  }
}
