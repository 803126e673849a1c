import { UserError } from '../config/errors.ts';
import type { Db } from '../store/db.ts';
import type { JobQueue } from './queue.ts';
import { SqliteQueue, type SqliteQueueOptions } from './sqlite-queue.ts';

export * from './schema.ts';
export * from './queue.ts';
export { SqliteQueue, makeWorkerId } from './sqlite-queue.ts';

/**
 * The queue the configuration asks for. Only the embedded SQLite queue exists so far; REDIS_URL is
 * refused with a clear message rather than silently ignored (a second bot process would otherwise think
 * it shares work through Redis when it does not).
 */
export function openQueue(db: Db, options: SqliteQueueOptions & { redisUrl?: string } = {}): JobQueue {
  if (options.redisUrl) {
    throw new UserError('REDIS_URL is set, but the BullMQ queue is not part of this build yet: unset REDIS_URL to use the embedded SQLite queue');
  }
  return new SqliteQueue(db, options);
}
