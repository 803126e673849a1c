import type { Db } from '../store/db.ts';
import {
  DiscordTargetSchema,
  JobResultSchema,
  PaintRequestSchema,
  type DiscordTarget,
  type Job,
  type JobProgress,
  type JobStatus,
} from './schema.ts';

// The bot's durable record of its jobs. The embedded queue keeps its whole state here (table `jobs`); the
// BullMQ adapter keeps the bot's view of the jobs it put into Redis (table `redis_jobs`, plus the model).

/** The columns of a job table (CREATE TABLE body). */
export const JOB_COLUMNS = `
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        order_seq INTEGER NOT NULL,
        generation_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        status TEXT NOT NULL,
        request_json TEXT NOT NULL,
        target_json TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        worker_id TEXT,
        lease_expires_at INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        progress_json TEXT,
        result_json TEXT,
        error TEXT,
        note TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        delivered_at INTEGER,
        updated_at INTEGER NOT NULL
        `.trim();

/** A job row as stored. */
export interface JobRow {
  id: string;
  seq: number;
  order_seq: number;
  generation_id: string;
  user_id: string;
  status: JobStatus;
  request_json: string;
  target_json: string;
  attempts: number;
  max_attempts: number;
  worker_id: string | null;
  lease_expires_at: number | null;
  cancel_requested: number;
  progress_json: string | null;
  result_json: string | null;
  error: string | null;
  note: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  delivered_at: number | null;
  updated_at: number;
}

export function fromRow(r: JobRow): Job {
  return {
    id: r.id,
    generationId: r.generation_id,
    userId: r.user_id,
    status: r.status,
    request: PaintRequestSchema.parse(JSON.parse(r.request_json)),
    target: DiscordTargetSchema.parse(JSON.parse(r.target_json)),
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    workerId: r.worker_id,
    leaseExpiresAt: r.lease_expires_at,
    cancelRequested: r.cancel_requested === 1,
    progress: r.progress_json ? (JSON.parse(r.progress_json) as JobProgress) : null,
    result: r.result_json ? JobResultSchema.parse(JSON.parse(r.result_json)) : null,
    error: r.error,
    note: r.note,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    deliveredAt: r.delivered_at,
    seq: r.seq,
  };
}

/** Reads and bot-side writes that are the same for both job tables. */
export class JobTable {
  constructor(
    private readonly db: Db,
    private readonly name: 'jobs' | 'redis_jobs',
  ) {}

  row<R extends JobRow = JobRow>(id: string): R | undefined {
    return this.db.prepare(`SELECT * FROM ${this.name} WHERE id = ?`).get(id) as R | undefined;
  }

  setTarget(id: string, patch: Partial<DiscordTarget>): void {
    this.db
      .transaction(() => {
        const r = this.row(id);
        if (!r) return;
        const target = DiscordTargetSchema.parse({ ...JSON.parse(r.target_json), ...patch });
        this.db.prepare(`UPDATE ${this.name} SET target_json = ? WHERE id = ?`).run(JSON.stringify(target), id);
      })
      .immediate();
  }

  activeFor(userId: string): Job[] {
    const rows = this.db
      .prepare(`SELECT * FROM ${this.name} WHERE user_id = ? AND status IN ('queued', 'running') ORDER BY order_seq`)
      .all(userId) as JobRow[];
    return rows.map(fromRow);
  }

  undelivered(): Job[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM ${this.name} WHERE status IN ('done', 'failed', 'cancelled') AND delivered_at IS NULL ORDER BY seq`,
      )
      .all() as JobRow[];
    return rows.map(fromRow);
  }

  markDelivered(id: string): void {
    this.db.prepare(`UPDATE ${this.name} SET delivered_at = ? WHERE id = ?`).run(Date.now(), id);
  }
}
