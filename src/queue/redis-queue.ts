import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Job as BullJob, Queue, QueueEvents, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { childLogger } from '../log/logger.ts';
import { migrate, type Db, type Migration } from '../store/db.ts';
import { newId } from '../store/ids.ts';
import {
  BLOB_REF,
  blobBase,
  BlobFilesSchema,
  BlobMissingError,
  BlobRefusedError,
  deleteRefs,
  getFiles,
  isBlobRef,
  putFiles,
  resultBase,
} from './blobs.ts';
import type {
  CancelOutcome,
  FinishOutcome,
  JobQueue,
  ModelStats,
  QueueStats,
  RecoveredJob,
  ServedModel,
} from './queue.ts';
import { checkEvictionPolicy, connect, connectionOptions, ConnectionWatch, redisWhere } from './redis-connection.ts';
import { fromRow, JOB_COLUMNS, JobTable, type JobRow } from './job-table.ts';
import {
  JobResultSchema,
  NewJobSchema,
  PaintRequestSchema,
  TERMINAL,
  type DiscordTarget,
  type Job,
  type JobProgress,
  type JobResult,
  type JobStatus,
  type NewJob,
  type PaintRequest,
} from './schema.ts';

const log = childLogger('redis-queue');

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

type Row = JobRow & { model: string };

const NEXT_SEQ = '(SELECT coalesce(max(seq), 0) + 1 FROM redis_jobs)';

/** What a BullMQ job carries: everything a worker on another machine needs, nothing about Discord. */
export const JobDataSchema = z.object({
  v: z.literal(1),
  userId: z.string().min(1),
  // Its files are Redis references the bot wrote (see pack): a worker writes them to its disk under their names.
  request: PaintRequestSchema.superRefine((r, ctx) => {
    if (r.parent) {
      const files = BlobFilesSchema.safeParse(r.parent.artifacts);
      for (const issue of files.error?.issues ?? [])
        ctx.addIssue({ code: 'custom', path: ['parent', 'artifacts', ...issue.path], message: issue.message });
    }
    const mask = (r.params.rag as Record<string, unknown> | undefined)?.Repainting_mask;
    if (typeof mask === 'string' && !BlobFilesSchema.safeParse({ 'mask.png': mask }).success)
      ctx.addIssue({
        code: 'custom',
        path: ['params', 'rag', 'Repainting_mask'],
        message: "not the queue's reference for a mask",
      });
  }),
  maxAttempts: z.number().int().min(1).max(5),
  /** Set by a worker that gave the job back (its painter process died): shown to the user. */
  note: z.string().optional(),
});
export type JobData = z.infer<typeof JobDataSchema>;

/** What a worker hands back: the files as Redis references, fetched and deleted by the bot. */
const ReturnSchema = z.object({
  files: BlobFilesSchema,
  model: z.object({ id: z.string(), version: z.string() }),
  paintMs: z.number(),
});

function hasImage(returnvalue: unknown): boolean {
  const files = (returnvalue as { files?: unknown } | null)?.files;
  return typeof files === 'object' && files !== null && 'image.png' in files;
}

const CANCELLED = 'cancelled';
const STOPPED = 'the worker painting it stopped (crashed, was killed or lost its connection)';
export const ORIGINAL_GONE =
  'the original image is no longer available to the workers (its files expired in Redis before a worker took this repaint), so it cannot be repainted; **Try again** paints the changed layout as a new picture';

/** BullMQ queue names may not contain ':'; model ids are short slugs such as flux.1-schnell. */
export function queueName(model: string): string {
  return `paint-${model.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

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

interface Served {
  model: string;
  version: string;
  worker?: Worker;
  lockMs?: number;
  beat?: NodeJS.Timeout;
}

interface Active {
  bull: BullJob;
  token: string;
  workerId: string;
  data: JobData;
  view: Job;
  scratch: string;
}

/**
 * The job queue on BullMQ and Redis, for bots whose workers run on other machines. One BullMQ queue per
 * model id; a worker takes jobs only from the queue of the model it announced. Jobs carry the whole paint
 * request; parent artifacts and results travel as binary Redis values (see blobs.ts). Workers pull jobs
 * with BullMQ's manual API (getNextJob, extendLock, moveToCompleted), which maps one to one onto the
 * claim/renew/complete contract the worker host already speaks; BullMQ's stalled check re-queues a job
 * whose worker died (once), then fails it.
 *
 * Fairness: a job's BullMQ priority is 1 + the number of jobs its user already has waiting or painting for
 * that model, so the queue runs everyone's first job before anyone's second (FIFO within a rank).
 */
export class RedisQueue implements JobQueue {
  readonly scratchDir: string;
  private readonly redis: Redis;
  private sub: Redis | undefined;
  private readonly watch: ConnectionWatch;
  private readonly queues = new Map<string, Queue>();
  private readonly events = new Map<string, QueueEvents>();
  private readonly served = new Map<string, Served>();
  private readonly active = new Map<string, Active>();
  private readonly listeners = new Set<(job: Job) => void>();
  private readonly refreshing = new Map<string, Promise<void>>();
  private readonly prefix: string;
  private readonly ttl: number;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly ownScratch: boolean;
  private readonly table: JobTable | undefined;

  /** getNextJob blocks on Redis (up to BullMQ's drainDelay) until a job arrives. */
  readonly claimWaits = true;

  get workDir(): string {
    return this.scratchDir;
  }

  private constructor(private readonly o: RedisQueueOptions) {
    this.prefix = o.prefix ?? 'sw';
    this.ttl = o.blobTtlSeconds ?? 24 * 3600;
    this.watch = new ConnectionWatch(redisWhere(o.url));
    this.redis = connect(o.url, this.watch);
    this.ownScratch = !o.scratchDir;
    this.scratchDir = o.scratchDir ?? mkdtempSync(path.join(tmpdir(), 'sw-worker-'));
    if (o.db) {
      migrate(o.db, 'redis-queue', MIGRATIONS);
      this.table = new JobTable(o.db, 'redis_jobs');
    }
  }

  /** Connects, refuses a Redis that evicts keys, and (bot side) catches up on jobs that moved while it was away. */
  static async open(o: RedisQueueOptions): Promise<RedisQueue> {
    const q = new RedisQueue(o);
    try {
      await checkEvictionPolicy(q.redis, o.url);
    } catch (e) {
      await q.close();
      throw e;
    }
    if (o.db) {
      for (const model of q.openModels()) q.follow(model);
      q.reconcileTimer = setInterval(() => void q.reconcile(), o.reconcileMs ?? 2000);
      q.reconcileTimer.unref();
      void q.reconcile();
    }
    return q;
  }

  // ------------------------------------------------------------------ shared

  private key(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }

  private queueFor(model: string): Queue {
    let q = this.queues.get(model);
    if (!q) {
      q = this.watch.watch(
        new Queue(queueName(model), { connection: connectionOptions(this.o.url), prefix: this.prefix }),
      );
      this.queues.set(model, q);
    }
    return q;
  }

  /** Live workers by model (heartbeats younger than three beats). */
  private async liveWorkers(): Promise<Map<string, string[]>> {
    const key = this.key('workers');
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

  subscribe(listener: (job: Job) => void): () => void {
    this.listeners.add(listener);
    if (this.served.size > 0) void this.listenForCancels();
    return () => this.listeners.delete(listener);
  }

  private notify(job: Job): void {
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

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.listeners.clear();
    const members = [...this.served.entries()].map(([id, s]) => `${s.model}\t${id}`);
    for (const s of this.served.values()) if (s.beat) clearInterval(s.beat);
    const closing: Promise<unknown>[] = [];
    for (const s of this.served.values()) if (s.worker) closing.push(s.worker.close(true));
    for (const e of this.events.values()) closing.push(e.close());
    await Promise.allSettled(closing);
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    if (members.length) await this.redis.zrem(this.key('workers'), ...members).catch(() => undefined);
    this.redis.disconnect();
    this.sub?.disconnect();
    if (this.ownScratch) rmSync(this.scratchDir, { recursive: true, force: true });
  }

  // ------------------------------------------------------------------ bot side: the local view

  private get db(): Db {
    if (!this.o.db) throw new Error('this Redis queue serves workers only (no bot database)');
    return this.o.db;
  }

  private row(id: string): Row | undefined {
    return this.table?.row<Row>(id);
  }

  private openModels(): string[] {
    return (
      this.db.prepare(`SELECT DISTINCT model FROM redis_jobs WHERE status IN ('queued', 'running')`).all() as {
        model: string;
      }[]
    ).map((r) => r.model);
  }

  /** Updates the bot's row and tells listeners. `fields` are column → value. */
  private update(id: string, fields: Record<string, unknown>): Job | undefined {
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

  private finishLocal(
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

  /** Follows a model's queue events: each one makes the bot re-read that job. */
  private follow(model: string): void {
    if (this.events.has(model) || this.closed) return;
    const ev = this.watch.watch(
      new QueueEvents(queueName(model), { connection: connectionOptions(this.o.url), prefix: this.prefix }),
    );
    const look = ({ jobId }: { jobId: string }) => void this.refresh(jobId);
    for (const name of ['active', 'progress', 'completed', 'failed', 'stalled', 'waiting', 'removed'] as const)
      ev.on(name, look);
    this.events.set(model, ev);
  }

  private async reconcile(): Promise<void> {
    if (this.closed) return;
    const ids = this.db.prepare(`SELECT id, model FROM redis_jobs WHERE status IN ('queued', 'running')`).all() as {
      id: string;
      model: string;
    }[];
    for (const { id, model } of ids) {
      this.follow(model);
      await this.refresh(id);
    }
  }

  /** Re-reads one job from Redis into the bot's row; one at a time per job. */
  private refresh(id: string): Promise<void> {
    const prev = this.refreshing.get(id);
    if (prev) return prev;
    const p = this.doRefresh(id)
      .catch((e: unknown) => {
        if (!this.closed) log.debug({ err: e, jobId: id }, 'could not read a job from Redis (will look again)');
      })
      .finally(() => this.refreshing.delete(id));
    this.refreshing.set(id, p);
    return p;
  }

  private async doRefresh(id: string): Promise<void> {
    const row = this.row(id);
    if (!row || TERMINAL.has(row.status) || this.closed) return;
    // The state first: a job read before it finished would pair a final state with stale fields.
    const q = this.queueFor(row.model);
    const state = await q.getJobState(id);
    const bull = state === 'unknown' ? undefined : await BullJob.fromId<JobData>(q, id);
    if (!bull || state === 'unknown') {
      // Just added: the row is written before the job reaches Redis.
      if (Date.now() - row.created_at < 10_000) return;
      this.finishLocal(id, 'failed', {
        error: 'the job disappeared from Redis (was Redis restarted without its append-only file, or flushed?)',
      });
      await this.dropBlobs(id);
      return;
    }
    if (state === 'completed') return this.collect(row, bull);
    if (state === 'failed') return this.failed(row, bull);
    if (state === 'active') {
      const p = bull.progress as { step?: number; total?: number; preview?: boolean } | number | undefined;
      const progress: JobProgress | null =
        typeof p === 'object' && p && typeof p.step === 'number' && typeof p.total === 'number'
          ? { step: p.step, total: p.total }
          : null;
      const before = row.progress_json ? (JSON.parse(row.progress_json) as JobProgress) : null;
      if (progress && typeof p === 'object' && p.preview)
        progress.previewPath = (await this.preview(row, progress, before)) ?? before?.previewPath;
      const changed =
        row.status !== 'running' ||
        row.attempts !== bull.attemptsStarted ||
        JSON.stringify(progress) !== JSON.stringify(before);
      // Started again without the bot seeing it wait in between (another worker took it at once): say why.
      const rerun = row.attempts > 0 && bull.attemptsStarted > row.attempts && !row.note;
      if (changed) {
        this.update(id, {
          status: 'running',
          attempts: bull.attemptsStarted,
          worker_id: bull.processedBy ?? null,
          started_at: bull.processedOn ?? Date.now(),
          progress_json: progress ? JSON.stringify(progress) : null,
          ...(rerun ? { note: bull.data.note ?? `${STOPPED}; it was put back in the queue` } : {}),
        });
      }
      return;
    }
    // Waiting again after it ran: its worker gave it back or died.
    if (row.status === 'running') {
      // (Its run count is taken when it starts again: these fields may already be newer than the state.)
      this.update(id, {
        status: 'queued',
        worker_id: null,
        progress_json: null,
        note: bull.data.note ?? `${STOPPED}; it was put back in the queue`,
      });
    }
  }

  /** The newest preview of a running job, on the bot's disk (only fetched when the step moved on). */
  private async preview(row: Row, now: JobProgress, before: JobProgress | null): Promise<string | undefined> {
    if (before && before.step === now.step && before.previewPath) return before.previewPath;
    const data = await this.redis.getBuffer(this.key('preview', row.id));
    if (!data) return undefined;
    const file = path.join(this.artifactDir(row.generation_id), 'preview.png');
    await writeFile(`${file}.tmp`, data);
    await rename(`${file}.tmp`, file);
    return file;
  }

  private artifactDir(generationId: string): string {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(generationId))
      throw new Error(`generation id "${generationId}" is not safe as a folder name`);
    if (!this.o.dataDir) throw new Error('the bot side of the Redis queue needs DATA_DIR');
    const dir = path.join(this.o.dataDir, 'artifacts', generationId);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** A finished job: fetch its files onto the bot's disk, then delete them (and the job) from Redis. */
  private async collect(row: Row, bull: BullJob<JobData>): Promise<void> {
    const rv = ReturnSchema.safeParse(bull.returnvalue);
    // Only this job's own result files are read (and then deleted): the result in Redis is not trusted.
    const base = rv.success ? resultBase(this.prefix, row.id, rv.data.files) : undefined;
    const refs = rv.success && base ? Object.values(rv.data.files) : [];
    const finishedAt = bull.finishedOn ?? Date.now();
    const fail = (error: string) => this.finishLocal(row.id, 'failed', { error, finishedAt, ran: bull });
    if (row.cancel_requested === 1) {
      this.finishLocal(row.id, 'cancelled', { error: row.error ?? CANCELLED, finishedAt, ran: bull });
    } else if (!hasImage(bull.returnvalue)) {
      log.error({ jobId: row.id, returnvalue: bull.returnvalue }, 'unreadable result');
      fail('the worker reported a result without an image (an incompatible worker version?)');
    } else if (!rv.success || !base) {
      const why = rv.error?.issues[0]?.message ?? "its image is not this job's result";
      log.error({ jobId: row.id, why }, 'result refused: its files are not the ones a worker stores');
      fail(
        `the result in Redis names files that are not this job's own (${why}), so none of it was stored; it was not written by a scenewright worker of this version`,
      );
    } else {
      try {
        const files = await getFiles(this.redis, rv.data.files, this.artifactDir(row.generation_id), base);
        this.finishLocal(row.id, 'done', {
          result: { imagePath: files['image.png']!, artifacts: files, model: rv.data.model, paintMs: rv.data.paintMs },
          finishedAt,
          ran: bull,
        });
      } catch (e) {
        if (e instanceof BlobRefusedError) fail(`the result in Redis was refused: ${e.message}`);
        else if (e instanceof BlobMissingError)
          fail(`the finished image expired in Redis before I could fetch it (${e.missing.join(', ')})`);
        else throw e;
      }
    }
    await deleteRefs(this.redis, refs);
    await this.dropBlobs(row.id);
    await bull.remove().catch((e: unknown) => log.debug({ err: e, jobId: row.id }, 'finished job already removed'));
  }

  private async failed(row: Row, bull: BullJob<JobData>): Promise<void> {
    const reason = bull.failedReason ?? 'unknown error';
    const finishedAt = bull.finishedOn ?? Date.now();
    if (row.cancel_requested === 1 || reason === CANCELLED) {
      this.finishLocal(row.id, 'cancelled', { error: row.error ?? CANCELLED, finishedAt, ran: bull });
    } else if (/stalled more than allowable limit/.test(reason)) {
      this.finishLocal(row.id, 'failed', {
        error: `${STOPPED} again (it was started ${bull.attemptsStarted} times), so it was stopped for good`,
        finishedAt,
        ran: bull,
      });
    } else {
      this.finishLocal(row.id, 'failed', { error: reason, finishedAt, ran: bull });
    }
    await this.dropBlobs(row.id);
    await bull.remove().catch(() => undefined);
  }

  /** The parent's files, the mask and the preview that went up for this job (listed in a set at enqueue). */
  private async dropBlobs(id: string): Promise<void> {
    const list = this.key('blobs', id);
    const keys = await this.redis.smembers(list);
    await this.redis.del(...keys, list, this.key('preview', id), this.key('cancel', id));
  }

  async enqueue(input: NewJob): Promise<{ job: Job; position: number }> {
    const job = NewJobSchema.parse(input);
    const id = newId('j');
    const model = job.request.params.model;
    const now = Date.now();
    const insert = (status: JobStatus, error: string | null) =>
      this.db
        .prepare(
          `INSERT INTO redis_jobs (id, seq, order_seq, model, generation_id, user_id, status, request_json, target_json, max_attempts, error, created_at, finished_at, updated_at)
           VALUES (@id, ${NEXT_SEQ}, ${NEXT_SEQ}, @model, @generationId, @userId, @status, @request, @target, @maxAttempts, @error, @now, @finished, @now) RETURNING *`,
        )
        .get({
          id,
          model,
          generationId: job.request.generationId,
          userId: job.userId,
          status,
          request: JSON.stringify(job.request),
          target: JSON.stringify(job.target),
          maxAttempts: job.maxAttempts,
          error,
          now,
          finished: status === 'queued' ? null : now,
        }) as Row;

    const live = await this.liveWorkers();
    if (!live.get(model)?.length) {
      // Said at once rather than left waiting for a worker nobody started.
      const others = [...live.entries()].map(([m, w]) => `${m} (${w.length} worker${w.length === 1 ? '' : 's'})`);
      const why =
        `no worker is painting ${model} right now` +
        (others.length
          ? `; choose a model that has one: ${others.join(', ')}`
          : '; the bot’s operator has to start a worker for it');
      const r = insert('failed', why);
      const failed = fromRow(r);
      this.notify(failed);
      return { job: failed, position: 1 };
    }
    const { request, refs } = await this.pack(id, job.request);
    if (refs.length) {
      const list = this.key('blobs', id);
      await this.redis
        .multi()
        .sadd(list, ...refs.map((r) => r.slice(BLOB_REF.length)))
        .expire(list, this.ttl)
        .exec();
    }
    const ahead = (
      this.db
        .prepare(
          `SELECT count(*) AS n FROM redis_jobs WHERE user_id = ? AND model = ? AND status IN ('queued', 'running')`,
        )
        .get(job.userId, model) as { n: number }
    ).n;
    const r = insert('queued', null);
    try {
      this.follow(model);
      const data: JobData = { v: 1, userId: job.userId, request, maxAttempts: job.maxAttempts };
      // The bot removes a finished job once it has its result; the age limit only bounds what a bot that
      // never comes back leaves behind (its files expire with the same TTL).
      const keep = { age: this.ttl };
      await this.queueFor(model).add('paint', data, {
        jobId: id,
        priority: 1 + ahead,
        attempts: 1,
        removeOnComplete: keep,
        removeOnFail: keep,
      });
    } catch (e) {
      this.db.prepare('DELETE FROM redis_jobs WHERE id = ?').run(id);
      await deleteRefs(this.redis, refs).catch(() => undefined);
      throw e;
    }
    const queued = fromRow(r);
    this.notify(queued);
    return { job: queued, position: (await this.position(id)) ?? 1 };
  }

  /** Replaces the bot's file paths in a request (parent artifacts, the repaint mask) by Redis values. */
  private async pack(id: string, request: PaintRequest): Promise<{ request: PaintRequest; refs: string[] }> {
    const out: PaintRequest = structuredClone(request);
    const refs: string[] = [];
    if (out.parent) {
      out.parent.artifacts = await putFiles(
        this.redis,
        blobBase(this.prefix, id, 'in:parent'),
        out.parent.artifacts,
        this.ttl,
      );
      refs.push(...Object.values(out.parent.artifacts));
    }
    const rag = out.params.rag as Record<string, unknown> | undefined;
    const mask = rag?.Repainting_mask;
    if (rag && typeof mask === 'string' && existsSync(mask)) {
      const put = await putFiles(this.redis, blobBase(this.prefix, id, 'in:mask'), { 'mask.png': mask }, this.ttl);
      rag.Repainting_mask = put['mask.png'];
      refs.push(put['mask.png']!);
    }
    return { request: out, refs };
  }

  async get(id: string): Promise<Job | undefined> {
    const r = this.row(id);
    if (r) return fromRow(r);
    return this.active.get(id)?.view;
  }

  async cancel(id: string, reason: string): Promise<CancelOutcome> {
    const row = this.row(id);
    if (!row) return 'unknown';
    if (TERMINAL.has(row.status)) return 'finished';
    const bull = await BullJob.fromId<JobData>(this.queueFor(row.model), id);
    const state = bull ? await bull.getState() : 'unknown';
    if (bull && ['waiting', 'prioritized', 'delayed'].includes(state)) {
      try {
        await bull.remove();
        this.finishLocal(id, 'cancelled', { error: reason });
        await this.dropBlobs(id);
        return 'cancelled';
      } catch {
        // A worker took it in between: stop it there.
      }
    }
    // Running on some worker (or just finished): the worker looks at this key between steps and on its lease.
    await this.redis.set(this.key('cancel', id), reason, 'EX', this.ttl);
    await this.redis.publish(this.key('cancel'), id);
    this.update(id, { cancel_requested: 1, error: reason });
    void this.refresh(id);
    return 'cancelling';
  }

  /** The order BullMQ takes jobs in: the plain wait list first, then by priority (FIFO within one). */
  private async order(model: string): Promise<string[]> {
    return this.queueFor(model).getRanges(['wait', 'prioritized'], 0, -1, true);
  }

  async position(id: string): Promise<number | undefined> {
    const row = this.row(id);
    if (!row) return undefined;
    if (row.status === 'running') return 0;
    if (row.status !== 'queued') return undefined;
    const ids = await this.order(row.model);
    const i = ids.indexOf(id);
    // Between two looks it may have started: say "next" rather than nothing.
    return i < 0 ? 1 : i + 1;
  }

  /** Places of many jobs with one look per model (for position updates in progress messages). */
  async positions(ids: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const byModel = new Map<string, string[]>();
    for (const id of ids) {
      const r = this.row(id);
      if (r?.status === 'queued') byModel.set(r.model, [...(byModel.get(r.model) ?? []), id]);
    }
    for (const [model, mine] of byModel) {
      const order = await this.order(model);
      for (const id of mine) out.set(id, order.indexOf(id) + 1 || 1);
    }
    return out;
  }

  async setTarget(id: string, patch: Partial<DiscordTarget>): Promise<void> {
    this.table!.setTarget(id, patch);
  }

  async activeFor(userId: string): Promise<Job[]> {
    return this.table!.activeFor(userId);
  }

  async stats(): Promise<QueueStats> {
    const live = await this.liveWorkers();
    const models = new Set([...live.keys(), ...(this.o.db ? this.openModels() : [])]);
    const per: ModelStats[] = [];
    for (const model of [...models].sort()) {
      const c = await this.queueFor(model).getJobCounts('wait', 'prioritized', 'active');
      per.push({
        model,
        workers: live.get(model)?.length ?? 0,
        queued: (c.wait ?? 0) + (c.prioritized ?? 0),
        running: c.active ?? 0,
      });
    }
    return {
      queued: per.reduce((n, m) => n + m.queued, 0),
      running: per.reduce((n, m) => n + m.running, 0),
      workers: [...live.values()].flat(),
      models: per,
    };
  }

  /** Nothing can run jobs of a model without live workers: fail those now instead of leaving them queued. */
  async failWaiting(message: string): Promise<Job[]> {
    const live = await this.liveWorkers();
    const rows = this.db.prepare(`SELECT * FROM redis_jobs WHERE status = 'queued'`).all() as Row[];
    const out: Job[] = [];
    for (const r of rows) {
      if (live.get(r.model)?.length) continue;
      const bull = await BullJob.fromId(this.queueFor(r.model), r.id);
      await bull?.remove().catch(() => undefined);
      const failed = this.finishLocal(r.id, 'failed', { error: message });
      await this.dropBlobs(r.id);
      if (failed) out.push(failed);
    }
    return out;
  }

  async undelivered(): Promise<Job[]> {
    return this.table?.undelivered() ?? [];
  }

  async markDelivered(id: string): Promise<void> {
    this.table!.markDelivered(id);
  }

  /** BullMQ's stalled check (run by every worker) re-queues jobs of dead workers; nothing to do here. */
  async recoverStalled(): Promise<RecoveredJob[]> {
    return [];
  }

  // ------------------------------------------------------------------ worker side

  /** A worker announces the model it paints; it takes jobs from that model's queue only. */
  async serve(workerId: string, model: ServedModel): Promise<void> {
    const prev = this.served.get(workerId);
    if (prev?.model === model.id) return;
    if (prev) {
      if (prev.beat) clearInterval(prev.beat);
      await prev.worker?.close(true);
      await this.redis.zrem(this.key('workers'), `${prev.model}\t${workerId}`);
    }
    const s: Served = { model: model.id, version: model.version };
    this.served.set(workerId, s);
    const every = this.o.heartbeatMs ?? 5000;
    const beat = () =>
      this.redis.zadd(this.key('workers'), Date.now() + 3 * every, `${s.model}\t${workerId}`).catch(() => undefined);
    await beat();
    s.beat = setInterval(() => void beat(), every);
    s.beat.unref();
    if (this.listeners.size) await this.listenForCancels();
    log.info({ workerId, model: model.id, queue: queueName(model.id) }, 'serving jobs for this model');
  }

  /** Cancels reach a worker as a message (within a step) and as a key (read on every lease renewal). */
  private async listenForCancels(): Promise<void> {
    if (this.sub) return;
    this.sub = connect(this.o.url, this.watch);
    this.sub.on('message', (_channel: string, id: string) => {
      const a = this.active.get(id);
      if (a) this.notify({ ...a.view, cancelRequested: true });
    });
    await this.sub.subscribe(this.key('cancel'));
  }

  private workerFor(workerId: string, lockMs: number): Worker | undefined {
    const s = this.served.get(workerId);
    if (!s) return undefined;
    if (!s.worker || s.lockMs !== lockMs) {
      void s.worker?.close(true);
      s.lockMs = lockMs;
      s.worker = this.watch.watch(
        new Worker(queueName(s.model), null, {
          connection: connectionOptions(this.o.url),
          prefix: this.prefix,
          name: workerId,
          autorun: false,
          lockDuration: lockMs,
          stalledInterval: this.o.stalledIntervalMs ?? lockMs,
          maxStalledCount: 1,
          skipLockRenewal: true,
          drainDelay: 1,
        }),
      );
      void s.worker.startStalledCheckTimer();
    }
    return s.worker;
  }

  async claim(workerId: string, leaseMs: number): Promise<Job | undefined> {
    const worker = this.workerFor(workerId, leaseMs);
    if (!worker || this.closed) {
      // Not announced yet (the painter is still loading): a short pause instead of a busy loop.
      await new Promise((r) => setTimeout(r, 100));
      return undefined;
    }
    // Unreadable jobs are failed on the spot; a few in a row must not make an idle worker look busy.
    for (let i = 0; i < 10; i++) {
      const token = `${workerId}:${randomBytes(4).toString('hex')}`;
      const bull = (await worker.getNextJob(token, { block: true })) as BullJob<JobData> | undefined;
      if (!bull) return undefined;
      const refuse = async (message: string) => {
        log.error({ jobId: bull.id, reason: message }, 'job refused');
        await bull.moveToFailed(new Error(message), token, false);
      };
      const parsed = JobDataSchema.safeParse(bull.data);
      if (!parsed.success) {
        const what = parsed.error.issues
          .slice(0, 3)
          .map((x) => `${x.path.join('.') || 'data'}: ${x.message}`)
          .join('; ');
        await refuse(
          `the job's data in Redis is not a scenewright paint request (${what}); it was written by hand or by an incompatible version`,
        );
        continue;
      }
      const data = parsed.data;
      // BullMQ marks a job that stalled once too often and leaves failing it to the next worker that fetches it.
      if (bull.deferredFailure || bull.attemptsStarted > data.maxAttempts) {
        await refuse(`${STOPPED} again (it was started ${bull.attemptsStarted - 1} times), so it was stopped for good`);
        continue;
      }
      const scratch = path.join(this.scratchDir, 'jobs', bull.id!);
      let request: PaintRequest;
      try {
        request = await this.unpack(bull.id!, data.request, scratch);
      } catch (e) {
        rmSync(scratch, { recursive: true, force: true });
        if (e instanceof BlobRefusedError)
          await refuse(`the job's files in Redis are not the ones the bot stored for it (${e.message})`);
        else if (e instanceof BlobMissingError) await refuse(ORIGINAL_GONE);
        else throw e;
        continue;
      }
      const view: Job = {
        id: bull.id!,
        generationId: request.generationId,
        userId: data.userId,
        status: 'running',
        request,
        target: { userId: data.userId, guildId: null, channelId: 'remote' },
        attempts: bull.attemptsStarted,
        maxAttempts: data.maxAttempts,
        workerId,
        leaseExpiresAt: Date.now() + leaseMs,
        cancelRequested: false,
        progress: null,
        result: null,
        error: null,
        note: data.note ?? null,
        createdAt: bull.timestamp,
        startedAt: Date.now(),
        finishedAt: null,
        deliveredAt: null,
        seq: 0,
      };
      this.active.set(view.id, { bull, token, workerId, data, view, scratch });
      return view;
    }
    return undefined;
  }

  /** The parent's files and the mask, from Redis onto this machine, with the request pointing at them. */
  private async unpack(id: string, request: PaintRequest, dir: string): Promise<PaintRequest> {
    const out: PaintRequest = structuredClone(request);
    if (out.parent) {
      const base = blobBase(this.prefix, id, 'in:parent');
      out.parent.artifacts = await getFiles(this.redis, out.parent.artifacts, path.join(dir, 'parent'), base);
    }
    const rag = out.params.rag as Record<string, unknown> | undefined;
    if (rag && isBlobRef(rag.Repainting_mask)) {
      const base = blobBase(this.prefix, id, 'in:mask');
      rag.Repainting_mask = (await getFiles(this.redis, { 'mask.png': rag.Repainting_mask }, dir, base))['mask.png'];
    }
    return out;
  }

  private mine(id: string, workerId: string): Active | undefined {
    const a = this.active.get(id);
    return a && a.workerId === workerId ? a : undefined;
  }

  private async cancelRequested(id: string): Promise<boolean> {
    return (await this.redis.exists(this.key('cancel', id))) === 1;
  }

  async renew(id: string, workerId: string, leaseMs: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    const a = this.mine(id, workerId);
    if (!a) return { held: false, cancelRequested: false };
    const held = Number(await a.bull.extendLock(a.token, leaseMs)) > 0;
    return { held, cancelRequested: await this.cancelRequested(id) };
  }

  async progress(
    id: string,
    workerId: string,
    progress: JobProgress,
  ): Promise<{ held: boolean; cancelRequested: boolean }> {
    const a = this.mine(id, workerId);
    if (!a) return { held: false, cancelRequested: false };
    let preview = false;
    if (progress.previewPath) {
      try {
        await this.redis.set(this.key('preview', id), readFileSync(progress.previewPath), 'EX', 600);
        preview = true;
      } catch (e) {
        log.debug({ err: e }, 'preview not readable');
      }
    }
    await a.bull.updateProgress({ step: progress.step, total: progress.total, preview });
    return { held: true, cancelRequested: await this.cancelRequested(id) };
  }

  private end(a: Active, result?: JobResult): void {
    this.active.delete(a.view.id);
    rmSync(a.scratch, { recursive: true, force: true });
    // The painter's output folder for this generation, once its files are in Redis.
    if (result) {
      const dir = path.dirname(result.imagePath);
      if (dir.startsWith(this.scratchDir + path.sep)) rmSync(dir, { recursive: true, force: true });
    }
  }

  private async settle(a: Active, finish: () => Promise<FinishOutcome>): Promise<FinishOutcome> {
    try {
      if (await this.cancelRequested(a.view.id)) {
        await a.bull.moveToFailed(new Error(CANCELLED), a.token, false);
        return 'cancelled';
      }
      return await finish();
    } catch (e) {
      log.warn(
        { err: e, jobId: a.view.id },
        'could not record the verdict (the lock was lost: another worker has the job)',
      );
      return 'lost';
    }
  }

  async complete(id: string, workerId: string, result: JobResult): Promise<FinishOutcome> {
    const a = this.mine(id, workerId);
    if (!a) return 'lost';
    try {
      return await this.settle(a, async () => {
        const files = await putFiles(
          this.redis,
          blobBase(this.prefix, id, `out:${a.token.split(':').at(-1)!}`),
          result.artifacts,
          this.ttl,
        );
        try {
          await a.bull.moveToCompleted({ files, model: result.model, paintMs: result.paintMs }, a.token, false);
        } catch (e) {
          await deleteRefs(this.redis, Object.values(files));
          throw e;
        }
        return 'done';
      });
    } finally {
      this.end(a, result);
    }
  }

  async fail(id: string, workerId: string, message: string): Promise<FinishOutcome> {
    const a = this.mine(id, workerId);
    if (!a) return 'lost';
    try {
      return await this.settle(a, async () => {
        await a.bull.moveToFailed(new Error(message), a.token, false);
        return 'failed';
      });
    } finally {
      this.end(a);
    }
  }

  async abandon(id: string, workerId: string, reason: string): Promise<RecoveredJob | undefined> {
    const a = this.mine(id, workerId);
    if (!a) return undefined;
    try {
      let outcome: RecoveredJob['outcome'];
      if (await this.cancelRequested(id)) {
        await a.bull.moveToFailed(new Error(CANCELLED), a.token, false);
        outcome = 'cancelled';
      } else if (a.bull.attemptsStarted >= a.data.maxAttempts) {
        await a.bull.moveToFailed(
          new Error(`${reason} again (it was started ${a.bull.attemptsStarted} times), so it was stopped for good`),
          a.token,
          false,
        );
        outcome = 'failed';
      } else {
        await a.bull.updateData({ ...a.data, note: `${reason}; it was put back in the queue` });
        await a.bull.moveToWait(a.token);
        outcome = 'requeued';
      }
      return { job: { ...a.view, status: outcome === 'requeued' ? 'queued' : outcome }, outcome };
    } catch (e) {
      log.warn({ err: e, jobId: id }, 'could not give the job back (the lock was lost)');
      return undefined;
    } finally {
      this.end(a);
    }
  }
}
