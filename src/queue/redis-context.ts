import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { childLogger } from '../log/logger.ts';
import type { Db } from '../store/db.ts';
import { connect, connectionOptions, ConnectionWatch, redisWhere } from './redis-connection.ts';
import { queueName } from './redis-data.ts';
import type { Job } from './schema.ts';

const log = childLogger('redis-queue');

export interface RedisQueueOptions {
  url: string;
  /** Bot side: the SQLite file that holds the bot's view of its jobs. Without it the queue only serves workers. */
  db?: Db;
  /** Bot side: results are unpacked into `<dataDir>/artifacts/<generation id>/`, as the store expects. */
  dataDir?: string;
  /** Worker side: where parents are unpacked and painters write (default: a new temporary folder). */
  scratchDir?: string;
  /** Key prefix in Redis. */
  prefix?: string;
  /** How long files wait in Redis for their receiver. */
  blobTtlSeconds?: number;
  /** How often the bot re-reads the state of its unfinished jobs (events can be missed across a reconnect). */
  reconcileMs?: number;
  /** How often a worker says it is alive; it counts as gone after three missed beats. */
  heartbeatMs?: number;
  /** How often workers look for jobs whose lock ran out (default: the lease). */
  stalledIntervalMs?: number;
}

/**
 * What the bot's side and the worker's side of one process share: the Redis connection and its watch, the
 * BullMQ queue per model, the key names, the list of live workers and the change feed's listeners.
 */
export class RedisContext {
  readonly redis: Redis;
  readonly watch: ConnectionWatch;
  readonly prefix: string;
  /** How long files (and cancel marks) live in Redis, in seconds. */
  readonly ttl: number;
  readonly listeners = new Set<(job: Job) => void>();
  private readonly queues = new Map<string, Queue>();
  closed = false;

  constructor(readonly o: RedisQueueOptions) {
    this.prefix = o.prefix ?? 'sw';
    this.ttl = o.blobTtlSeconds ?? 24 * 3600;
    this.watch = new ConnectionWatch(redisWhere(o.url));
    this.redis = connect(o.url, this.watch);
  }

  key(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }

  /** A second connection on the same watch (a subscriber cannot send other commands). */
  connect(): Redis {
    return connect(this.o.url, this.watch);
  }

  /** Options for BullMQ objects (Queue, QueueEvents, Worker) on this Redis and prefix. */
  bullOptions(): { connection: ReturnType<typeof connectionOptions>; prefix: string } {
    return { connection: connectionOptions(this.o.url), prefix: this.prefix };
  }

  queueFor(model: string): Queue {
    let q = this.queues.get(model);
    if (!q) {
      q = this.watch.watch(new Queue(queueName(model), this.bullOptions()));
      this.queues.set(model, q);
    }
    return q;
  }

  /** The set of live workers: members `<model>\t<worker id>`, scored by when they count as gone. */
  get workersKey(): string {
    return this.key('workers');
  }

  /** Live workers by model (heartbeats younger than three beats). */
  async liveWorkers(): Promise<Map<string, string[]>> {
    const key = this.workersKey;
    await this.redis.zremrangebyscore(key, '-inf', String(Date.now()));
    const members = await this.redis.zrange(key, '0', '-1');
    const out = new Map<string, string[]>();
    for (const m of members) {
      const [model, workerId] = String(m).split('\t');
      if (!model || !workerId) continue;
      out.set(model, [...(out.get(model) ?? []), workerId]);
    }
    return out;
  }

  notify(job: Job): void {
    setImmediate(() => {
      for (const l of [...this.listeners]) {
        try {
          l(job);
        } catch (e) {
          log.error({ err: e, jobId: job.id }, 'job listener threw');
        }
      }
    });
  }

  /** Closes the BullMQ queues: after the workers and event streams that use them. */
  async closeQueues(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
