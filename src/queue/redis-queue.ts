import type { CancelOutcome, FinishOutcome, JobQueue, QueueStats, RecoveredJob, ServedModel } from './queue.ts';
import { RedisBotSide } from './redis-bot.ts';
import { BotSync } from './redis-bot-sync.ts';
import { BotView } from './redis-bot-view.ts';
import { checkEvictionPolicy } from './redis-connection.ts';
import { RedisContext, type RedisQueueOptions } from './redis-context.ts';
import { RedisWorkerSide } from './redis-worker.ts';
import type { DiscordTarget, Job, JobProgress, JobResult, NewJob } from './schema.ts';

export type { RedisQueueOptions } from './redis-context.ts';
export { JobDataSchema, ORIGINAL_GONE, queueName, type JobData } from './redis-data.ts';

/**
 * The job queue on BullMQ and Redis, for bots whose workers run on other machines. One BullMQ queue per
 * model id; a worker takes jobs only from the queue of the model it announced. Jobs carry the whole paint
 * request; parent artifacts and results travel as binary Redis values (see blobs.ts).
 *
 * One object serves both roles on one connection: the bot's side (redis-bot.ts, with its SQLite view when
 * `db` is given) and the worker's side (redis-worker.ts). A bot process uses it as a BotQueue, a `worker`
 * process as a WorkerQueue, and `npm start` with REDIS_URL as both.
 */
export class RedisQueue implements JobQueue {
  private readonly ctx: RedisContext;
  private readonly bot: RedisBotSide;
  private readonly sync: BotSync | undefined;
  private readonly worker: RedisWorkerSide;
  private readonly view: BotView | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;

  /** getNextJob blocks on Redis (up to BullMQ's drainDelay) until a job arrives. */
  readonly claimWaits = true;

  private constructor(o: RedisQueueOptions) {
    this.ctx = new RedisContext(o);
    this.worker = new RedisWorkerSide(this.ctx);
    if (o.db) {
      this.view = new BotView(o.db, (job) => this.ctx.notify(job));
      this.sync = new BotSync(this.ctx, this.view);
    }
    this.bot = new RedisBotSide(this.ctx, this.view, this.sync);
  }

  /** Connects, refuses a Redis that evicts keys, and (bot side) catches up on jobs that moved while it was away. */
  static async open(o: RedisQueueOptions): Promise<RedisQueue> {
    const q = new RedisQueue(o);
    try {
      await checkEvictionPolicy(q.ctx.redis, o.url);
    } catch (e) {
      await q.close();
      throw e;
    }
    if (q.view && q.sync) {
      const sync = q.sync;
      for (const model of q.view.openModels()) sync.follow(model);
      q.reconcileTimer = setInterval(() => void sync.reconcile(), o.reconcileMs ?? 2000);
      q.reconcileTimer.unref();
      void sync.reconcile();
    }
    return q;
  }

  /** Key prefix in Redis (tests open more queues on the same one). */
  private get prefix(): string {
    return this.ctx.prefix;
  }

  get scratchDir(): string {
    return this.worker.scratchDir;
  }

  get workDir(): string {
    return this.worker.workDir;
  }

  // ------------------------------------------------------------------ both roles

  subscribe(listener: (job: Job) => void): () => void {
    this.ctx.listeners.add(listener);
    void this.worker.subscribed();
    return () => this.ctx.listeners.delete(listener);
  }

  /** BullMQ's stalled check (run by every worker) re-queues jobs of dead workers; nothing to do here. */
  async recoverStalled(): Promise<RecoveredJob[]> {
    return this.bot.recoverStalled();
  }

  async close(): Promise<void> {
    if (this.ctx.closed) return;
    this.ctx.closed = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.ctx.listeners.clear();
    const closing: Promise<unknown>[] = [];
    this.worker.stop(closing);
    this.sync?.stop(closing);
    await Promise.allSettled(closing);
    await this.ctx.closeQueues();
    await this.worker.leave();
    this.ctx.redis.disconnect();
    this.worker.disconnect();
  }

  // ------------------------------------------------------------------ the bot's role

  enqueue(job: NewJob): Promise<{ job: Job; position: number }> {
    return this.bot.enqueue(job);
  }

  /** The bot's row; on a worker machine, the job this process is painting. */
  async get(id: string): Promise<Job | undefined> {
    return (await this.bot.get(id)) ?? this.worker.view(id);
  }

  cancel(id: string, reason: string): Promise<CancelOutcome> {
    return this.bot.cancel(id, reason);
  }

  position(id: string): Promise<number | undefined> {
    return this.bot.position(id);
  }

  positions(ids: string[]): Promise<Map<string, number>> {
    return this.bot.positions(ids);
  }

  setTarget(id: string, patch: Partial<DiscordTarget>): Promise<void> {
    return this.bot.setTarget(id, patch);
  }

  activeFor(userId: string): Promise<Job[]> {
    return this.bot.activeFor(userId);
  }

  stats(): Promise<QueueStats> {
    return this.bot.stats();
  }

  failWaiting(message: string): Promise<Job[]> {
    return this.bot.failWaiting(message);
  }

  undelivered(): Promise<Job[]> {
    return this.bot.undelivered();
  }

  markDelivered(id: string): Promise<void> {
    return this.bot.markDelivered(id);
  }

  // ------------------------------------------------------------------ the worker's role

  serve(workerId: string, model: ServedModel): Promise<void> {
    return this.worker.serve(workerId, model);
  }

  claim(workerId: string, leaseMs: number): Promise<Job | undefined> {
    return this.worker.claim(workerId, leaseMs);
  }

  renew(id: string, workerId: string, leaseMs: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    return this.worker.renew(id, workerId, leaseMs);
  }

  progress(id: string, workerId: string, progress: JobProgress): Promise<{ held: boolean; cancelRequested: boolean }> {
    return this.worker.progress(id, workerId, progress);
  }

  complete(id: string, workerId: string, result: JobResult): Promise<FinishOutcome> {
    return this.worker.complete(id, workerId, result);
  }

  fail(id: string, workerId: string, message: string): Promise<FinishOutcome> {
    return this.worker.fail(id, workerId, message);
  }

  abandon(id: string, workerId: string, reason: string): Promise<RecoveredJob | undefined> {
    return this.worker.abandon(id, workerId, reason);
  }
}
