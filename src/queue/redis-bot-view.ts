import type { Job as BullJob } from 'bullmq';
import { migrate, type Db, type Migration } from '../store/db.ts';
import { fromRow, JOB_COLUMNS, JobTable, type JobRow } from './job-table.ts';
import type { DiscordTarget, Job, JobResult, JobStatus } from './schema.ts';
import { JobResultSchema } from './schema.ts';

// The bot's view of the jobs it put into Redis: where each is shown on Discord, its last known state and
// whether its result has been shown. Only the bot reads or writes it; workers never see the SQLite file.
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'bot-side view of BullMQ jobs',
    sql: `
      CREATE TABLE redis_jobs (
        ${JOB_COLUMNS},
        model TEXT NOT NULL
      );
      CREATE INDEX redis_jobs_status ON redis_jobs(status);
      CREATE INDEX redis_jobs_user ON redis_jobs(user_id, status);
    `,
  },
];

export type Row = JobRow & { model: string };

const NEXT_SEQ = '(SELECT coalesce(max(seq), 0) + 1 FROM redis_jobs)';

export interface NewRow {
  id: string;
  model: string;
  generationId: string;
  userId: string;
  status: JobStatus;
  request: string;
  target: string;
  maxAttempts: number;
  error: string | null;
  /** When the request came in (before the look at the live workers). */
  now: number;
}

/**
 * The bot's SQLite rows for its Redis jobs. Every change goes through `update`, which bumps the change feed's
 * cursor and tells the listeners (`notify`).
 */
export class BotView {
  private readonly table: JobTable;

  constructor(
    private readonly db: Db,
    private readonly notify: (job: Job) => void,
  ) {
    migrate(db, 'redis-queue', MIGRATIONS);
    this.table = new JobTable(db, 'redis_jobs');
  }

  row(id: string): Row | undefined {
    return this.table.row<Row>(id);
  }

  /** Models with a job that is waiting or running. */
  openModels(): string[] {
    return (
      this.db.prepare(`SELECT DISTINCT model FROM redis_jobs WHERE status IN ('queued', 'running')`).all() as {
        model: string;
      }[]
    ).map((r) => r.model);
  }

  /** Jobs that are waiting or running, with their model. */
  open(): { id: string; model: string }[] {
    return this.db.prepare(`SELECT id, model FROM redis_jobs WHERE status IN ('queued', 'running')`).all() as {
      id: string;
      model: string;
    }[];
  }

  queued(): Row[] {
    return this.db.prepare(`SELECT * FROM redis_jobs WHERE status = 'queued'`).all() as Row[];
  }

  /** This user's jobs for this model that are waiting or running. */
  countActive(userId: string, model: string): number {
    return (
      this.db
        .prepare(
          `SELECT count(*) AS n FROM redis_jobs WHERE user_id = ? AND model = ? AND status IN ('queued', 'running')`,
        )
        .get(userId, model) as { n: number }
    ).n;
  }

  insert(r: NewRow): Row {
    return this.db
      .prepare(
        `INSERT INTO redis_jobs (id, seq, order_seq, model, generation_id, user_id, status, request_json, target_json, max_attempts, error, created_at, finished_at, updated_at)
           VALUES (@id, ${NEXT_SEQ}, ${NEXT_SEQ}, @model, @generationId, @userId, @status, @request, @target, @maxAttempts, @error, @now, @finished, @now) RETURNING *`,
      )
      .get({ ...r, finished: r.status === 'queued' ? null : r.now }) as Row;
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM redis_jobs WHERE id = ?').run(id);
  }

  /** Updates the bot's row and tells listeners. `fields` are column → value. */
  update(id: string, fields: Record<string, unknown>): Job | undefined {
    const cols = Object.keys(fields);
    const r = this.db
      .prepare(
        `UPDATE redis_jobs SET ${cols.map((c) => `${c} = @${c}`).join(', ')}, updated_at = @now_, seq = ${NEXT_SEQ} WHERE id = @id_ RETURNING *`,
      )
      .get({ ...fields, now_: Date.now(), id_: id }) as Row | undefined;
    if (!r) return undefined;
    const job = fromRow(r);
    this.notify(job);
    return job;
  }

  finish(
    id: string,
    status: JobStatus,
    fields: { result?: JobResult; error?: string | null; finishedAt?: number; ran?: BullJob },
  ): Job | undefined {
    // A quick job can start and finish between two looks: its run is recorded from the finished job.
    const ran = fields.ran
      ? {
          attempts: fields.ran.attemptsStarted,
          worker_id: fields.ran.processedBy ?? null,
          started_at: fields.ran.processedOn ?? null,
        }
      : {};
    return this.update(id, {
      ...ran,
      status,
      result_json: status === 'done' && fields.result ? JSON.stringify(JobResultSchema.parse(fields.result)) : null,
      error: fields.error ?? null,
      finished_at: fields.finishedAt ?? Date.now(),
      lease_expires_at: null,
    });
  }

  setTarget(id: string, patch: Partial<DiscordTarget>): void {
    this.table.setTarget(id, patch);
  }

  activeFor(userId: string): Job[] {
    return this.table.activeFor(userId);
  }

  undelivered(): Job[] {
    return this.table.undelivered();
  }

  markDelivered(id: string): void {
    this.table.markDelivered(id);
  }
}
