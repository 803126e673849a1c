import { mkdirSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Job as BullJob, QueueEvents } from 'bullmq';
import { childLogger } from '../log/logger.ts';
import { BlobMissingError, BlobRefusedError, deleteRefs, getFiles, resultBase } from './blobs.ts';
import type { BotView, Row } from './redis-bot-view.ts';
import type { RedisContext } from './redis-context.ts';
import { CANCELLED, hasImage, queueName, ReturnSchema, STOPPED, type JobData } from './redis-data.ts';
import { TERMINAL, type JobProgress } from './schema.ts';

const log = childLogger('redis-queue');

/**
 * How the bot learns what happened to its jobs in Redis: it follows each model's queue events and re-reads a
 * job on every event (and all open jobs now and then, since events can be missed across a reconnect). A
 * finished job's files come down onto the bot's disk, then the job and its files leave Redis.
 */
export class BotSync {
  private readonly events = new Map<string, QueueEvents>();
  private readonly refreshing = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: RedisContext,
    private readonly view: BotView,
  ) {}

  /** Closes the event streams (their closing is added to `closing`). */
  stop(closing: Promise<unknown>[]): void {
    for (const e of this.events.values()) closing.push(e.close());
  }

  /** Follows a model's queue events: each one makes the bot re-read that job. */
  follow(model: string): void {
    if (this.events.has(model) || this.ctx.closed) return;
    const ev = this.ctx.watch.watch(new QueueEvents(queueName(model), { ...this.ctx.bullOptions() }));
    const look = ({ jobId }: { jobId: string }) => void this.refresh(jobId);
    for (const name of ['active', 'progress', 'completed', 'failed', 'stalled', 'waiting', 'removed'] as const)
      ev.on(name, look);
    this.events.set(model, ev);
  }

  async reconcile(): Promise<void> {
    if (this.ctx.closed) return;
    for (const { id, model } of this.view.open()) {
      this.follow(model);
      await this.refresh(id);
    }
  }

  /** Re-reads one job from Redis into the bot's row; one at a time per job. */
  refresh(id: string): Promise<void> {
    const prev = this.refreshing.get(id);
    if (prev) return prev;
    const p = this.doRefresh(id)
      .catch((e: unknown) => {
        if (!this.ctx.closed) log.debug({ err: e, jobId: id }, 'could not read a job from Redis (will look again)');
      })
      .finally(() => this.refreshing.delete(id));
    this.refreshing.set(id, p);
    return p;
  }

  private async doRefresh(id: string): Promise<void> {
    const row = this.view.row(id);
    if (!row || TERMINAL.has(row.status) || this.ctx.closed) return;
    // The state first: a job read before it finished would pair a final state with stale fields.
    const q = this.ctx.queueFor(row.model);
    const state = await q.getJobState(id);
    const bull = state === 'unknown' ? undefined : await BullJob.fromId<JobData>(q, id);
    if (!bull || state === 'unknown') {
      // Just added: the row is written before the job reaches Redis.
      if (Date.now() - row.created_at < 10_000) return;
      this.view.finish(id, 'failed', {
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
        this.view.update(id, {
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
      this.view.update(id, {
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
    const data = await this.ctx.redis.getBuffer(this.ctx.key('preview', row.id));
    if (!data) return undefined;
    const file = path.join(this.artifactDir(row.generation_id), 'preview.png');
    await writeFile(`${file}.tmp`, data);
    await rename(`${file}.tmp`, file);
    return file;
  }

  artifactDir(generationId: string): string {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(generationId))
      throw new Error(`generation id "${generationId}" is not safe as a folder name`);
    if (!this.ctx.o.dataDir) throw new Error('the bot side of the Redis queue needs DATA_DIR');
    const dir = path.join(this.ctx.o.dataDir, 'artifacts', generationId);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** A finished job: fetch its files onto the bot's disk, then delete them (and the job) from Redis. */
  private async collect(row: Row, bull: BullJob<JobData>): Promise<void> {
    const rv = ReturnSchema.safeParse(bull.returnvalue);
    // Only this job's own result files are read (and then deleted): the result in Redis is not trusted.
    const base = rv.success ? resultBase(this.ctx.prefix, row.id, rv.data.files) : undefined;
    const refs = rv.success && base ? Object.values(rv.data.files) : [];
    const finishedAt = bull.finishedOn ?? Date.now();
    const fail = (error: string) => this.view.finish(row.id, 'failed', { error, finishedAt, ran: bull });
    if (row.cancel_requested === 1) {
      this.view.finish(row.id, 'cancelled', { error: row.error ?? CANCELLED, finishedAt, ran: bull });
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
        const files = await getFiles(this.ctx.redis, rv.data.files, this.artifactDir(row.generation_id), base);
        this.view.finish(row.id, 'done', {
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
    await deleteRefs(this.ctx.redis, refs);
    await this.dropBlobs(row.id);
    await bull.remove().catch((e: unknown) => log.debug({ err: e, jobId: row.id }, 'finished job already removed'));
  }

  private async failed(row: Row, bull: BullJob<JobData>): Promise<void> {
    const reason = bull.failedReason ?? 'unknown error';
    const finishedAt = bull.finishedOn ?? Date.now();
    if (row.cancel_requested === 1 || reason === CANCELLED) {
      this.view.finish(row.id, 'cancelled', { error: row.error ?? CANCELLED, finishedAt, ran: bull });
    } else if (/stalled more than allowable limit/.test(reason)) {
      this.view.finish(row.id, 'failed', {
        error: `${STOPPED} again (it was started ${bull.attemptsStarted} times), so it was stopped for good`,
        finishedAt,
        ran: bull,
      });
    } else {
      this.view.finish(row.id, 'failed', { error: reason, finishedAt, ran: bull });
    }
    await this.dropBlobs(row.id);
    await bull.remove().catch(() => undefined);
  }

  /** The parent's files, the mask and the preview that went up for this job (listed in a set at enqueue). */
  async dropBlobs(id: string): Promise<void> {
    const list = this.ctx.key('blobs', id);
    // Only this job's own files: the list is in Redis, where anyone who can write could add other keys to it.
    const own = `${this.ctx.key('blob', id)}:`;
    const keys = (await this.ctx.redis.smembers(list)).filter((k) => k.startsWith(own));
    await this.ctx.redis.del(...keys, list, this.ctx.key('preview', id), this.ctx.key('cancel', id));
  }
}
