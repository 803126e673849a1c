import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { migrate, type Db, type Migration } from '../store/db.ts';
import { newId } from '../store/ids.ts';
import { childLogger } from '../log/logger.ts';
import type { CancelOutcome, FinishOutcome, JobQueue, QueueStats, RecoveredJob } from './queue.ts';
import { fromRow, JOB_COLUMNS, JobTable, type JobRow } from './job-table.ts';
import {
  JobResultSchema,
  NewJobSchema,
  type DiscordTarget,
  type Job,
  type JobProgress,
  type JobResult,
  type JobStatus,
  type NewJob,
} from './schema.ts';

export { fromRow, type JobRow } from './job-table.ts';

const log = childLogger('queue');

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'durable job table',
    sql: `
      CREATE TABLE jobs (
        ${JOB_COLUMNS}
      );
      CREATE UNIQUE INDEX jobs_seq ON jobs(seq);
      CREATE INDEX jobs_waiting ON jobs(status, order_seq);
      CREATE INDEX jobs_user ON jobs(user_id, status);
    `,
  },
];

/** A worker id that says where the worker runs, so a dead process on this machine is recognised at once. */
export function makeWorkerId(kind: string): string {
  return `${kind}@${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

function workerIsDeadHere(workerId: string): boolean {
  const m = /@(.+):(\d+):[0-9a-f]+$/.exec(workerId);
  if (!m || m[1] !== hostname()) return false;
  const pid = Number(m[2]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export interface SqliteQueueOptions {
  /** How often the change feed looks for changes made by other processes (ms). */
  pollMs?: number;
}

const NEXT_SEQ = '(SELECT coalesce(max(seq), 0) + 1 FROM jobs)';

/**
 * The embedded durable queue: a job table in the bot's SQLite file. Every change bumps a global sequence
 * number; the change feed polls for rows above the last one it saw, which works the same whether the
 * worker runs in this process, a child process or a separate `worker` process on the same file.
 */
export class SqliteQueue implements JobQueue {
  private readonly listeners = new Set<(job: Job) => void>();
  private lastSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private pumpScheduled = false;
  private closed = false;
  private readonly pollMs: number;
  private readonly table: JobTable;

  constructor(
    private readonly db: Db,
    options: SqliteQueueOptions = {},
  ) {
    migrate(db, 'queue', MIGRATIONS);
    this.table = new JobTable(db, 'jobs');
    this.pollMs = options.pollMs ?? 250;
  }

  private row(id: string): JobRow | undefined {
    return this.table.row(id);
  }

  private changed(): void {
    // Local writes are announced promptly instead of at the next poll; listeners run outside the caller.
    if (this.listeners.size === 0 || this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed || this.listeners.size === 0) return;
    const rows = this.db.prepare('SELECT * FROM jobs WHERE seq > ? ORDER BY seq').all(this.lastSeq) as JobRow[];
    for (const r of rows) {
      this.lastSeq = Math.max(this.lastSeq, r.seq);
      let job: Job;
      try {
        job = fromRow(r);
      } catch (e) {
        log.error({ err: e, jobId: r.id }, 'unreadable job row skipped');
        continue;
      }
      for (const l of [...this.listeners]) {
        try {
          l(job);
        } catch (e) {
          log.error({ err: e, jobId: job.id }, 'job listener threw');
        }
      }
    }
  }

  async enqueue(input: NewJob): Promise<{ job: Job; position: number }> {
    const job = NewJobSchema.parse(input);
    const id = newId('j');
    const now = Date.now();
    const position = this.db
      .transaction(() => {
        this.db
          .prepare(
            `INSERT INTO jobs (id, seq, order_seq, generation_id, user_id, status, request_json, target_json, max_attempts, created_at, updated_at)
           VALUES (@id, ${NEXT_SEQ}, ${NEXT_SEQ}, @generationId, @userId, 'queued', @request, @target, @maxAttempts, @now, @now)`,
          )
          .run({
            id,
            generationId: job.request.generationId,
            userId: job.userId,
            request: JSON.stringify(job.request),
            target: JSON.stringify(job.target),
            maxAttempts: job.maxAttempts,
            now,
          });
        return this.positionOf(id) ?? 1;
      })
      .immediate();
    this.changed();
    return { job: fromRow(this.row(id)!), position };
  }

  async get(id: string): Promise<Job | undefined> {
    const r = this.row(id);
    return r ? fromRow(r) : undefined;
  }

  async claim(workerId: string, leaseMs: number): Promise<Job | undefined> {
    const now = Date.now();
    // One statement: the pick and the state change cannot be split by another claimer.
    const r = this.db
      .prepare(
        `UPDATE jobs SET status = 'running', worker_id = @workerId, lease_expires_at = @lease, attempts = attempts + 1,
           started_at = @now, updated_at = @now, progress_json = NULL, seq = ${NEXT_SEQ}
         WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY order_seq LIMIT 1)
         RETURNING *`,
      )
      .get({ workerId, lease: now + leaseMs, now }) as JobRow | undefined;
    if (!r) return undefined;
    this.changed();
    return fromRow(r);
  }

  async renew(id: string, workerId: string, leaseMs: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    // A lease renewal is not a change anyone watches for: no seq bump.
    const r = this.db
      .prepare(
        `UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND worker_id = ? AND status = 'running' RETURNING cancel_requested`,
      )
      .get(Date.now() + leaseMs, id, workerId) as { cancel_requested: number } | undefined;
    return { held: r !== undefined, cancelRequested: r?.cancel_requested === 1 };
  }

  async progress(
    id: string,
    workerId: string,
    progress: JobProgress,
  ): Promise<{ held: boolean; cancelRequested: boolean }> {
    const r = this.db
      .prepare(
        `UPDATE jobs SET progress_json = ?, updated_at = ?, seq = ${NEXT_SEQ} WHERE id = ? AND worker_id = ? AND status = 'running' RETURNING cancel_requested`,
      )
      .get(JSON.stringify(progress), Date.now(), id, workerId) as { cancel_requested: number } | undefined;
    if (r) this.changed();
    return { held: r !== undefined, cancelRequested: r?.cancel_requested === 1 };
  }

  private finish(
    id: string,
    workerId: string,
    status: JobStatus,
    fields: { result?: JobResult; error?: string },
  ): FinishOutcome {
    const outcome = this.db
      .transaction((): FinishOutcome => {
        const r = this.row(id);
        if (!r || r.status !== 'running' || r.worker_id !== workerId) return 'lost';
        // A cancel that arrived while the job ran wins over its result: the user asked for nothing.
        const final: JobStatus = r.cancel_requested === 1 ? 'cancelled' : status;
        const now = Date.now();
        this.db
          .prepare(
            `UPDATE jobs SET status = @status, result_json = @result, error = @error, finished_at = @now, updated_at = @now,
             lease_expires_at = NULL, seq = ${NEXT_SEQ} WHERE id = @id`,
          )
          .run({
            id,
            status: final,
            result: final === 'done' && fields.result ? JSON.stringify(JobResultSchema.parse(fields.result)) : null,
            error: final === 'cancelled' ? (r.error ?? 'cancelled') : (fields.error ?? null),
            now,
          });
        return final as FinishOutcome;
      })
      .immediate();
    this.changed();
    return outcome;
  }

  async complete(id: string, workerId: string, result: JobResult): Promise<FinishOutcome> {
    return this.finish(id, workerId, 'done', { result });
  }

  async fail(id: string, workerId: string, message: string): Promise<FinishOutcome> {
    return this.finish(id, workerId, 'failed', { error: message });
  }

  /** Re-queues a running job whose worker is gone, or fails it when it has been started `max_attempts` times. */
  private recover(r: JobRow, reason: string): RecoveredJob {
    const now = Date.now();
    let outcome: RecoveredJob['outcome'];
    if (r.cancel_requested === 1) {
      outcome = 'cancelled';
      this.db
        .prepare(
          `UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?, lease_expires_at = NULL, seq = ${NEXT_SEQ} WHERE id = ?`,
        )
        .run(now, now, r.id);
    } else if (r.attempts < r.max_attempts) {
      outcome = 'requeued';
      this.db
        .prepare(
          `UPDATE jobs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL, progress_json = NULL, note = ?, updated_at = ?, seq = ${NEXT_SEQ} WHERE id = ?`,
        )
        .run(`${reason}; it was put back in the queue`, now, r.id);
    } else {
      outcome = 'failed';
      this.db
        .prepare(
          `UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, updated_at = ?, lease_expires_at = NULL, seq = ${NEXT_SEQ} WHERE id = ?`,
        )
        .run(`${reason} again (it was started ${r.attempts} times), so it was stopped for good`, now, now, r.id);
    }
    return { job: fromRow(this.row(r.id)!), outcome };
  }

  async abandon(id: string, workerId: string, reason: string): Promise<RecoveredJob | undefined> {
    const out = this.db
      .transaction(() => {
        const r = this.row(id);
        if (!r || r.status !== 'running' || r.worker_id !== workerId) return undefined;
        return this.recover(r, reason);
      })
      .immediate();
    if (out) this.changed();
    return out;
  }

  async recoverStalled(): Promise<RecoveredJob[]> {
    const now = Date.now();
    const out = this.db
      .transaction(() => {
        const running = this.db.prepare(`SELECT * FROM jobs WHERE status = 'running'`).all() as JobRow[];
        const recovered: RecoveredJob[] = [];
        for (const r of running) {
          const expired = r.lease_expires_at === null || r.lease_expires_at < now;
          const dead = r.worker_id !== null && workerIsDeadHere(r.worker_id);
          if (expired || dead)
            recovered.push(this.recover(r, 'the worker painting it stopped (crashed, was killed or restarted)'));
        }
        return recovered;
      })
      .immediate();
    if (out.length) {
      log.warn({ jobs: out.map((o) => ({ id: o.job.id, outcome: o.outcome })) }, 'recovered jobs of stopped workers');
      this.changed();
    }
    return out;
  }

  async cancel(id: string, reason: string): Promise<CancelOutcome> {
    const outcome = this.db
      .transaction((): CancelOutcome => {
        const r = this.row(id);
        if (!r) return 'unknown';
        const now = Date.now();
        if (r.status === 'queued') {
          this.db
            .prepare(
              `UPDATE jobs SET status = 'cancelled', error = ?, finished_at = ?, updated_at = ?, seq = ${NEXT_SEQ} WHERE id = ?`,
            )
            .run(reason, now, now, id);
          return 'cancelled';
        }
        if (r.status === 'running') {
          if (r.cancel_requested === 1) return 'cancelling';
          this.db
            .prepare(`UPDATE jobs SET cancel_requested = 1, error = ?, updated_at = ?, seq = ${NEXT_SEQ} WHERE id = ?`)
            .run(reason, now, id);
          return 'cancelling';
        }
        return 'finished';
      })
      .immediate();
    this.changed();
    return outcome;
  }

  private positionOf(id: string): number | undefined {
    const r = this.db.prepare('SELECT status, order_seq FROM jobs WHERE id = ?').get(id) as
      { status: JobStatus; order_seq: number } | undefined;
    if (!r) return undefined;
    if (r.status === 'running') return 0;
    if (r.status !== 'queued') return undefined;
    const ahead = this.db
      .prepare(`SELECT count(*) AS n FROM jobs WHERE status = 'queued' AND order_seq < ?`)
      .get(r.order_seq) as { n: number };
    return ahead.n + 1;
  }

  async position(id: string): Promise<number | undefined> {
    return this.positionOf(id);
  }

  async setTarget(id: string, patch: Partial<DiscordTarget>): Promise<void> {
    this.table.setTarget(id, patch);
  }

  async activeFor(userId: string): Promise<Job[]> {
    return this.table.activeFor(userId);
  }

  async stats(): Promise<QueueStats> {
    const counts = this.db
      .prepare(`SELECT status, count(*) AS n FROM jobs WHERE status IN ('queued', 'running') GROUP BY status`)
      .all() as {
      status: JobStatus;
      n: number;
    }[];
    const since = Date.now() - 10 * 60_000;
    const workers = this.db
      .prepare(
        `SELECT DISTINCT worker_id FROM jobs WHERE worker_id IS NOT NULL AND (status = 'running' OR updated_at > ?)`,
      )
      .all(since) as { worker_id: string }[];
    return {
      queued: counts.find((c) => c.status === 'queued')?.n ?? 0,
      running: counts.find((c) => c.status === 'running')?.n ?? 0,
      workers: workers.map((w) => w.worker_id),
    };
  }

  async failWaiting(message: string): Promise<Job[]> {
    const now = Date.now();
    // Row by row: the sequence subquery is evaluated once per statement, and every change needs its own number.
    const rows = this.db
      .transaction(() => {
        const ids = this.db.prepare(`SELECT id FROM jobs WHERE status = 'queued' ORDER BY order_seq`).all() as {
          id: string;
        }[];
        const update = this.db.prepare(
          `UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, updated_at = ?, seq = ${NEXT_SEQ} WHERE id = ? RETURNING *`,
        );
        return ids.map(({ id }) => update.get(message, now, now, id) as JobRow);
      })
      .immediate();
    if (rows.length) this.changed();
    return rows.map(fromRow);
  }

  async undelivered(): Promise<Job[]> {
    return this.table.undelivered();
  }

  async markDelivered(id: string): Promise<void> {
    this.table.markDelivered(id);
  }

  subscribe(listener: (job: Job) => void): () => void {
    if (this.listeners.size === 0) {
      const r = this.db.prepare('SELECT coalesce(max(seq), 0) AS s FROM jobs').get() as { s: number };
      this.lastSeq = r.s;
      this.timer = setInterval(() => this.pump(), this.pollMs);
      this.timer.unref();
    }
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }
}
