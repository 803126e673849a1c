import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Job as BullJob, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { childLogger } from '../log/logger.ts';
import { blobBase, BlobMissingError, BlobRefusedError, deleteRefs, getFiles, isBlobRef, putFiles } from './blobs.ts';
import type { FinishOutcome, RecoveredJob, ServedModel, WorkerQueue } from './queue.ts';
import type { RedisContext } from './redis-context.ts';
import {
  CANCELLED,
  JobDataSchema,
  ORIGINAL_GONE,
  queueName,
  runningView,
  STOPPED,
  type JobData,
} from './redis-data.ts';
import type { Job, JobProgress, JobResult, PaintRequest } from './schema.ts';

const log = childLogger('redis-queue');

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
 * The worker's side of the Redis queue. Workers pull jobs with BullMQ's manual API (getNextJob, extendLock,
 * moveToCompleted), which maps one to one onto the claim/renew/complete contract the worker host already
 * speaks; BullMQ's stalled check (run by every worker) re-queues a job whose worker died (once), then fails
 * it. A worker announces its model with a heartbeat in a sorted set and takes jobs from that model's queue
 * only; the parent files of a repaint come down from Redis into its scratch folder and the result goes up.
 */
export class RedisWorkerSide implements Omit<WorkerQueue, 'subscribe' | 'recoverStalled' | 'close'> {
  readonly scratchDir: string;
  private readonly ownScratch: boolean;
  private sub: Redis | undefined;
  private readonly served = new Map<string, Served>();
  private readonly active = new Map<string, Active>();

  /** getNextJob blocks on Redis (up to BullMQ's drainDelay) until a job arrives. */
  readonly claimWaits = true;

  constructor(private readonly ctx: RedisContext) {
    this.ownScratch = !ctx.o.scratchDir;
    this.scratchDir = ctx.o.scratchDir ?? mkdtempSync(path.join(tmpdir(), 'sw-worker-'));
  }

  get workDir(): string {
    return this.scratchDir;
  }

  /** What a job being painted here looks like (the bot side has no row for it on a worker machine). */
  view(id: string): Job | undefined {
    return this.active.get(id)?.view;
  }

  /** A listener joined the change feed: cancels must reach it once a model is served. */
  async subscribed(): Promise<void> {
    if (this.served.size > 0) await this.listenForCancels();
  }

  /** Stops the heartbeats; the BullMQ workers' closing is added to `closing`. */
  stop(closing: Promise<unknown>[]): void {
    for (const s of this.served.values()) if (s.beat) clearInterval(s.beat);
    for (const s of this.served.values()) if (s.worker) closing.push(s.worker.close(true));
  }

  /** Says at once that this process's workers are gone (rather than after three missed beats). */
  async leave(): Promise<void> {
    const members = [...this.served.entries()].map(([id, s]) => `${s.model}\t${id}`);
    if (members.length) await this.ctx.redis.zrem(this.ctx.workersKey, ...members).catch(() => undefined);
  }

  /** The last step of closing, once the main connection is gone. */
  disconnect(): void {
    this.sub?.disconnect();
    if (this.ownScratch) rmSync(this.scratchDir, { recursive: true, force: true });
  }

  /** A worker announces the model it paints; it takes jobs from that model's queue only. */
  async serve(workerId: string, model: ServedModel): Promise<void> {
    const prev = this.served.get(workerId);
    if (prev?.model === model.id) return;
    if (prev) {
      if (prev.beat) clearInterval(prev.beat);
      await prev.worker?.close(true);
      await this.ctx.redis.zrem(this.ctx.workersKey, `${prev.model}\t${workerId}`);
    }
    const s: Served = { model: model.id, version: model.version };
    this.served.set(workerId, s);
    const every = this.ctx.o.heartbeatMs ?? 5000;
    const beat = () =>
      this.ctx.redis
        .zadd(this.ctx.workersKey, Date.now() + 3 * every, `${s.model}\t${workerId}`)
        .catch(() => undefined);
    await beat();
    s.beat = setInterval(() => void beat(), every);
    s.beat.unref();
    if (this.ctx.listeners.size) await this.listenForCancels();
    log.info({ workerId, model: model.id, queue: queueName(model.id) }, 'serving jobs for this model');
  }

  /** Cancels reach a worker as a message (within a step) and as a key (read on every lease renewal). */
  private async listenForCancels(): Promise<void> {
    if (this.sub) return;
    this.sub = this.ctx.connect();
    this.sub.on('message', (_channel: string, id: string) => {
      const a = this.active.get(id);
      if (a) this.ctx.notify({ ...a.view, cancelRequested: true });
    });
    await this.sub.subscribe(this.ctx.key('cancel'));
  }

  private workerFor(workerId: string, lockMs: number): Worker | undefined {
    const s = this.served.get(workerId);
    if (!s) return undefined;
    if (!s.worker || s.lockMs !== lockMs) {
      void s.worker?.close(true);
      s.lockMs = lockMs;
      s.worker = this.ctx.watch.watch(
        new Worker(queueName(s.model), null, {
          ...this.ctx.bullOptions(),
          name: workerId,
          autorun: false,
          lockDuration: lockMs,
          stalledInterval: this.ctx.o.stalledIntervalMs ?? lockMs,
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
    if (!worker || this.ctx.closed) {
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
      const view = runningView(bull, data, request, workerId, leaseMs);
      this.active.set(view.id, { bull, token, workerId, data, view, scratch });
      return view;
    }
    return undefined;
  }

  /** The parent's files and the mask, from Redis onto this machine, with the request pointing at them. */
  private async unpack(id: string, request: PaintRequest, dir: string): Promise<PaintRequest> {
    const out: PaintRequest = structuredClone(request);
    if (out.parent) {
      const base = blobBase(this.ctx.prefix, id, 'in:parent');
      out.parent.artifacts = await getFiles(this.ctx.redis, out.parent.artifacts, path.join(dir, 'parent'), base);
    }
    const rag = out.params.rag as Record<string, unknown> | undefined;
    if (rag && isBlobRef(rag.Repainting_mask)) {
      const base = blobBase(this.ctx.prefix, id, 'in:mask');
      rag.Repainting_mask = (await getFiles(this.ctx.redis, { 'mask.png': rag.Repainting_mask }, dir, base))[
        'mask.png'
      ];
    }
    return out;
  }

  private mine(id: string, workerId: string): Active | undefined {
    const a = this.active.get(id);
    return a && a.workerId === workerId ? a : undefined;
  }

  private async cancelRequested(id: string): Promise<boolean> {
    return (await this.ctx.redis.exists(this.ctx.key('cancel', id))) === 1;
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
        await this.ctx.redis.set(this.ctx.key('preview', id), readFileSync(progress.previewPath), 'EX', 600);
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
          this.ctx.redis,
          blobBase(this.ctx.prefix, id, `out:${a.token.split(':').at(-1)!}`),
          result.artifacts,
          this.ctx.ttl,
        );
        try {
          await a.bull.moveToCompleted({ files, model: result.model, paintMs: result.paintMs }, a.token, false);
        } catch (e) {
          await deleteRefs(this.ctx.redis, Object.values(files));
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
