import { existsSync } from 'node:fs';
import { Job as BullJob } from 'bullmq';
import { newId } from '../store/ids.ts';
import { BLOB_REF, blobBase, deleteRefs, putFiles } from './blobs.ts';
import { fromRow } from './job-table.ts';
import type { BotQueue, CancelOutcome, ModelStats, QueueStats, RecoveredJob } from './queue.ts';
import type { BotSync } from './redis-bot-sync.ts';
import type { BotView, Row } from './redis-bot-view.ts';
import type { RedisContext } from './redis-context.ts';
import type { JobData } from './redis-data.ts';
import {
  NewJobSchema,
  TERMINAL,
  type DiscordTarget,
  type Job,
  type JobStatus,
  type NewJob,
  type PaintRequest,
} from './schema.ts';

/**
 * The bot's side of the Redis queue: it adds jobs to the BullMQ queue of their model (with the files a repaint
 * needs stored beside them), keeps its own SQLite view of them (redis-bot-view.ts, kept up to date by
 * redis-bot-sync.ts), cancels them and says where they are.
 *
 * Fairness: a job's BullMQ priority is 1 + the number of jobs its user already has waiting or painting for
 * that model, so the queue runs everyone's first job before anyone's second (FIFO within a rank).
 */
export class RedisBotSide implements Omit<BotQueue, 'subscribe' | 'close'> {
  constructor(
    private readonly ctx: RedisContext,
    /** Absent on a worker machine: it has no bot database. */
    private readonly view: BotView | undefined,
    private readonly sync: BotSync | undefined,
  ) {}

  private need(): BotView {
    if (!this.view) throw new Error('this Redis queue serves workers only (no bot database)');
    return this.view;
  }

  private row(id: string): Row | undefined {
    return this.view?.row(id);
  }

  async enqueue(input: NewJob): Promise<{ job: Job; position: number }> {
    const view = this.need();
    const job = NewJobSchema.parse(input);
    const id = newId('j');
    const model = job.request.params.model;
    const now = Date.now();
    const insert = (status: JobStatus, error: string | null) =>
      view.insert({
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
      });

    const live = await this.ctx.liveWorkers();
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
      this.ctx.notify(failed);
      return { job: failed, position: 1 };
    }
    const { request, refs } = await this.pack(id, job.request);
    if (refs.length) {
      const list = this.ctx.key('blobs', id);
      await this.ctx.redis
        .multi()
        .sadd(list, ...refs.map((r) => r.slice(BLOB_REF.length)))
        .expire(list, this.ctx.ttl)
        .exec();
    }
    const ahead = view.countActive(job.userId, model);
    const r = insert('queued', null);
    try {
      this.sync!.follow(model);
      const data: JobData = { v: 1, userId: job.userId, request, maxAttempts: job.maxAttempts };
      // The bot removes a finished job once it has its result; the age limit only bounds what a bot that
      // never comes back leaves behind (its files expire with the same TTL).
      const keep = { age: this.ctx.ttl };
      await this.ctx.queueFor(model).add('paint', data, {
        jobId: id,
        priority: 1 + ahead,
        attempts: 1,
        removeOnComplete: keep,
        removeOnFail: keep,
      });
    } catch (e) {
      view.delete(id);
      await deleteRefs(this.ctx.redis, refs).catch(() => undefined);
      throw e;
    }
    const queued = fromRow(r);
    this.ctx.notify(queued);
    return { job: queued, position: (await this.position(id)) ?? 1 };
  }

  /** Replaces the bot's file paths in a request (parent artifacts, the repaint mask) by Redis values. */
  private async pack(id: string, request: PaintRequest): Promise<{ request: PaintRequest; refs: string[] }> {
    const out: PaintRequest = structuredClone(request);
    const refs: string[] = [];
    if (out.parent) {
      out.parent.artifacts = await putFiles(
        this.ctx.redis,
        blobBase(this.ctx.prefix, id, 'in:parent'),
        out.parent.artifacts,
        this.ctx.ttl,
      );
      refs.push(...Object.values(out.parent.artifacts));
    }
    const rag = out.params.rag as Record<string, unknown> | undefined;
    const mask = rag?.Repainting_mask;
    if (rag && typeof mask === 'string' && existsSync(mask)) {
      const put = await putFiles(
        this.ctx.redis,
        blobBase(this.ctx.prefix, id, 'in:mask'),
        { 'mask.png': mask },
        this.ctx.ttl,
      );
      rag.Repainting_mask = put['mask.png'];
      refs.push(put['mask.png']!);
    }
    return { request: out, refs };
  }

  async get(id: string): Promise<Job | undefined> {
    const r = this.row(id);
    return r ? fromRow(r) : undefined;
  }

  async cancel(id: string, reason: string): Promise<CancelOutcome> {
    const row = this.row(id);
    if (!row) return 'unknown';
    if (TERMINAL.has(row.status)) return 'finished';
    const bull = await BullJob.fromId<JobData>(this.ctx.queueFor(row.model), id);
    const state = bull ? await bull.getState() : 'unknown';
    if (bull && ['waiting', 'prioritized', 'delayed'].includes(state)) {
      try {
        await bull.remove();
        this.need().finish(id, 'cancelled', { error: reason });
        await this.sync!.dropBlobs(id);
        return 'cancelled';
      } catch {
        // A worker took it in between: stop it there.
      }
    }
    // Running on some worker (or just finished): the worker looks at this key between steps and on its lease.
    await this.ctx.redis.set(this.ctx.key('cancel', id), reason, 'EX', this.ctx.ttl);
    await this.ctx.redis.publish(this.ctx.key('cancel'), id);
    this.need().update(id, { cancel_requested: 1, error: reason });
    void this.sync!.refresh(id);
    return 'cancelling';
  }

  /** The order BullMQ takes jobs in: the plain wait list first, then by priority (FIFO within one). */
  private async order(model: string): Promise<string[]> {
    return this.ctx.queueFor(model).getRanges(['wait', 'prioritized'], 0, -1, true);
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
    this.need().setTarget(id, patch);
  }

  async activeFor(userId: string): Promise<Job[]> {
    return this.need().activeFor(userId);
  }

  async stats(): Promise<QueueStats> {
    const live = await this.ctx.liveWorkers();
    const models = new Set([...live.keys(), ...(this.view?.openModels() ?? [])]);
    const per: ModelStats[] = [];
    for (const model of [...models].sort()) {
      const c = await this.ctx.queueFor(model).getJobCounts('wait', 'prioritized', 'active');
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
    const live = await this.ctx.liveWorkers();
    const rows = this.need().queued();
    const out: Job[] = [];
    for (const r of rows) {
      if (live.get(r.model)?.length) continue;
      const bull = await BullJob.fromId(this.ctx.queueFor(r.model), r.id);
      await bull?.remove().catch(() => undefined);
      const failed = this.need().finish(r.id, 'failed', { error: message });
      await this.sync!.dropBlobs(r.id);
      if (failed) out.push(failed);
    }
    return out;
  }

  async undelivered(): Promise<Job[]> {
    return this.view?.undelivered() ?? [];
  }

  async markDelivered(id: string): Promise<void> {
    this.need().markDelivered(id);
  }

  /** BullMQ's stalled check (run by every worker) re-queues jobs of dead workers; nothing to do here. */
  async recoverStalled(): Promise<RecoveredJob[]> {
    return [];
  }
}
