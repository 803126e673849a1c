import type { DiscordTarget, Job, JobProgress, JobResult, NewJob } from './schema.ts';

export type CancelOutcome =
  /** It was waiting and will never run. */
  | 'cancelled'
  /** It is running; the worker has been asked to stop and the job ends as cancelled. */
  | 'cancelling'
  /** Too late: it already ended (done, failed or cancelled). */
  | 'finished'
  | 'unknown';

export type FinishOutcome =
  | 'done'
  | 'failed'
  | 'cancelled'
  /** This worker no longer holds the job (its lease ran out and it was re-queued or failed). */
  | 'lost';

export interface ModelStats {
  model: string;
  /** Workers that announced this model and are alive. */
  workers: number;
  queued: number;
  running: number;
}

export interface QueueStats {
  queued: number;
  running: number;
  /** Workers that hold a live lease or claimed a job recently. */
  workers: string[];
  /** Per model, across the cluster (the BullMQ queue has one queue per model id). */
  models?: ModelStats[];
}

/** The model a worker paints, as it announces it. */
export interface ServedModel {
  id: string;
  version: string;
}

export interface RecoveredJob {
  job: Job;
  /** `requeued`: it will run again (once); `failed`: it had run too often; `cancelled`: a cancel was pending. */
  outcome: 'requeued' | 'failed' | 'cancelled';
}

/** What both roles use: the change feed, recovery of jobs whose worker died, and closing. */
export interface QueueFeed {
  /** Calls `listener` with the new state of every job that changes from now on, across processes. */
  subscribe(listener: (job: Job) => void): () => void;
  /** Running jobs whose worker is gone (lease expired, or a dead process on this machine). */
  recoverStalled(): Promise<RecoveredJob[]>;
  close(): Promise<void>;
}

/**
 * The queue as the bot uses it: puts jobs in, follows them to their result, cancels them, and says where they
 * are. The bot never claims or paints.
 */
export interface BotQueue extends QueueFeed {
  /** Adds a job; `position` is its place among waiting jobs (1 = next) at the moment it was added. */
  enqueue(job: NewJob): Promise<{ job: Job; position: number }>;
  get(id: string): Promise<Job | undefined>;
  cancel(id: string, reason: string): Promise<CancelOutcome>;
  /** 1-based place among waiting jobs; 0 while running; undefined once finished. */
  position(id: string): Promise<number | undefined>;
  /** Places of several waiting jobs at once (1 = next); jobs not waiting are left out. */
  positions?(ids: string[]): Promise<Map<string, number>>;
  /** Records where the bot shows the job (message id known only after the first reply). */
  setTarget(id: string, patch: Partial<DiscordTarget>): Promise<void>;
  /** Jobs of this user that are waiting or running. */
  activeFor(userId: string): Promise<Job[]>;
  stats(): Promise<QueueStats>;
  /** Fails every waiting job with `message` (the painter cannot load: nothing would ever run them). */
  failWaiting(message: string): Promise<Job[]>;
  /** Finished jobs whose result the bot has not shown yet (e.g. it was down when they finished). */
  undelivered(): Promise<Job[]>;
  markDelivered(id: string): Promise<void>;
}

/**
 * The queue as a worker host uses it: says which model it paints, takes jobs one at a time under a lease,
 * reports progress and gives its verdict. A worker never enqueues and never talks to Discord.
 */
export interface WorkerQueue extends QueueFeed {
  /** Where a worker host on this queue should write its paintings (Redis: a scratch folder; files go up to Redis). */
  readonly workDir?: string;
  /** claim() waits (briefly) for a job to arrive instead of answering at once: call it again right away. */
  readonly claimWaits?: boolean;
  /** A worker says which model it paints (once its painter has loaded); it then takes only jobs for that model. */
  serve?(workerId: string, model: ServedModel): Promise<void>;
  /** Atomically takes the oldest waiting job for `workerId` and leases it for `leaseMs`. */
  claim(workerId: string, leaseMs: number): Promise<Job | undefined>;
  /** Extends the lease; false when the worker lost the job. `cancelRequested` tells it to stop. */
  renew(id: string, workerId: string, leaseMs: number): Promise<{ held: boolean; cancelRequested: boolean }>;
  progress(id: string, workerId: string, progress: JobProgress): Promise<{ held: boolean; cancelRequested: boolean }>;
  complete(id: string, workerId: string, result: JobResult): Promise<FinishOutcome>;
  fail(id: string, workerId: string, message: string): Promise<FinishOutcome>;
  /** The worker died or gave the job up without a verdict: re-queue once (attempts permitting) or fail. */
  abandon(id: string, workerId: string, reason: string): Promise<RecoveredJob | undefined>;
}

/**
 * The job queue in both roles, as one process that both takes requests and paints them holds it (`npm start`).
 * Two implementations: SQLite, embedded in the bot's database (the default), and BullMQ on Redis for workers on
 * other machines (redis-queue.ts: enqueue → Queue.add, claim/renew/complete → a Worker's manual
 * getNextJob/extendLock/moveToCompleted, the change feed → QueueEvents plus a periodic re-read).
 */
export interface JobQueue extends BotQueue, WorkerQueue {}
