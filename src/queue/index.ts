import type { Db } from '../store/db.ts';
import type { JobQueue } from './queue.ts';
import { SqliteQueue, type SqliteQueueOptions } from './sqlite-queue.ts';
import type { RedisQueueOptions } from './redis-queue.ts';

export * from './schema.ts';
export * from './queue.ts';
export { SqliteQueue, makeWorkerId } from './sqlite-queue.ts';
export { RedisQueue, type RedisQueueOptions } from './redis-queue.ts';

export interface OpenQueueOptions extends SqliteQueueOptions, Omit<Partial<RedisQueueOptions>, 'db' | 'url'> {
  redisUrl?: string;
}

/**
 * The queue the configuration asks for: BullMQ on Redis when REDIS_URL is set (workers anywhere), else the
 * embedded SQLite queue in the bot's database. The Redis queue is loaded only when asked for.
 */
export async function openQueue(db: Db, options: OpenQueueOptions = {}): Promise<JobQueue> {
  if (options.redisUrl) {
    const { RedisQueue } = await import('./redis-queue.ts');
    return RedisQueue.open({ ...options, url: options.redisUrl, db });
  }
  return new SqliteQueue(db, options);
}
