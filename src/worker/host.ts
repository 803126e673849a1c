import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { childLogger } from '../log/logger.ts';
import { makeWorkerId } from '../queue/sqlite-queue.ts';
import type { WorkerQueue } from '../queue/queue.ts';
import { isArtifactName, type Job } from '../queue/schema.ts';
import { ChildMessageSchema, type ChildMessage, type HostMessage } from './protocol.ts';
import type { PainterInfo, PainterOptions } from './painter.ts';
import { resolveRequestStyles } from './styles.ts';

const log = childLogger('worker-host');

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.ts');
const TSX = createRequire(import.meta.url).resolve('tsx');

/** The painter could not be loaded: the message says why (missing weights, wrong folder...). */
export class PainterLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PainterLoadError';
  }
}

export interface WorkerHostOptions {
  queue: WorkerQueue;
  /** Images and artifacts go to `<dataDir>/artifacts/<generation id>/`, as the store expects. */
  dataDir: string;
  painterModule: string;
  painterOptions: PainterOptions;
  workerId?: string;
  /** A job is re-queued when its worker has not renewed the lease for this long. */
  leaseMs?: number;
  pollMs?: number;
  /** At most one progress record (and preview file) per this many ms. */
  progressEveryMs?: number;
  /** After a cancel, how long the painter may take to stop before its process is killed. */
  cancelGraceMs?: number;
  /** Loading a checkpoint can take minutes; past this the load counts as failed. */
  initTimeoutMs?: number;
  /** A job running longer than this is treated as hung: the process is killed and the job abandoned. */
  jobTimeoutMs?: number;
  /** First wait before replacing a dead painter process (doubles up to 30 s while it keeps failing). */
  respawnMs?: number;
  /** This worker's style folder (LORA_DIR): a job's style names become paths to its files, hashes checked. */
  loraDir?: string;
}

interface Running {
  job: Job;
  previewPath?: string;
  lastProgressAt: number;
  cancelSent: boolean;
  lost: boolean;
  timers: NodeJS.Timeout[];
  done: () => void;
}

/** Writes through a temporary file so a reader never sees half an image. */
function writeAtomic(file: string, data: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/**
 * Runs queue jobs in a painter child process, one at a time: claims a job, keeps its lease alive, relays
 * progress and cancellation, stores the image and artifacts, and records the verdict in the queue. A
 * child that dies mid-job is replaced; its job is re-queued once, then failed (the queue decides).
 */
export class WorkerHost {
  readonly workerId: string;
  private child: ChildProcess | undefined;
  private childReady: Promise<PainterInfo> | undefined;
  private painterInfo: PainterInfo | undefined;
  private running: Running | undefined;
  private paused = false;
  private stopping = false;
  private ticking = false;
  private loop: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private lastRecovery = 0;
  private respawnDelay = 1000;
  private readonly o: Required<Omit<WorkerHostOptions, 'workerId' | 'loraDir'>> & Pick<WorkerHostOptions, 'loraDir'>;

  constructor(options: WorkerHostOptions) {
    this.workerId = options.workerId ?? makeWorkerId('worker');
    this.o = {
      leaseMs: 30_000,
      pollMs: 250,
      progressEveryMs: 500,
      cancelGraceMs: 5_000,
      initTimeoutMs: 15 * 60_000,
      jobTimeoutMs: 60 * 60_000,
      respawnMs: 1000,
      ...options,
    };
    this.respawnDelay = this.o.respawnMs;
  }

  get info(): PainterInfo | undefined {
    return this.painterInfo;
  }

  /** The painting process's id (tests kill it to play a crash). */
  get childPid(): number | undefined {
    return this.child?.pid;
  }

  get currentJobId(): string | undefined {
    return this.running?.job.id;
  }

  /** Loads the painter and starts taking jobs. Rejects with PainterLoadError when the painter cannot load. */
  async start(): Promise<PainterInfo> {
    const info = await this.spawn();
    // A distributed queue routes jobs by model: say which one this host paints before taking any.
    await this.o.queue.serve?.(this.workerId, info);
    this.loop = setInterval(() => void this.tick(), this.o.pollMs);
    this.unsubscribe = this.o.queue.subscribe((job) => {
      if (job.status === 'queued') void this.tick();
      if (this.running && job.id === this.running.job.id && job.cancelRequested) this.sendCancel(this.running);
    });
    void this.tick();
    return info;
  }

  /** Stops taking new jobs (the running one finishes). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    void this.tick();
  }

  /**
   * Stops the host. A running job is given `graceMs` to finish; after that the child is stopped and the
   * job abandoned, so the next start re-queues it (once) instead of losing it.
   */
  async stop(graceMs = 0): Promise<void> {
    this.stopping = true;
    if (this.loop) clearInterval(this.loop);
    this.unsubscribe?.();
    const running = this.running;
    if (running) {
      await Promise.race([
        new Promise<void>((r) => {
          const prev = running.done;
          running.done = () => {
            prev();
            r();
          };
        }),
        sleep(graceMs),
      ]);
    }
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      this.sendTo(child, { type: 'shutdown' });
      await Promise.race([exited, sleep(3000)]);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  }

  private sendTo(child: ChildProcess, m: HostMessage): void {
    // The child can die between the check and the write; its exit handler deals with the job.
    if (child.connected)
      child.send(
        m,
        (err) => err && log.debug({ err, type: m.type }, 'painter process gone before a message reached it'),
      );
  }

  private spawn(): Promise<PainterInfo> {
    const child = fork(CHILD, [], {
      execArgv: ['--import', TSX],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child = child;
    this.childReady = new Promise<PainterInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new PainterLoadError(
            `the painter did not finish loading within ${Math.round(this.o.initTimeoutMs / 1000)} s`,
          ),
        );
        child.kill('SIGKILL');
      }, this.o.initTimeoutMs);
      const onMessage = (raw: unknown) => {
        const m = ChildMessageSchema.safeParse(raw);
        if (!m.success) return;
        if (m.data.type === 'loading') {
          // A distributed queue fails jobs of models nobody serves: announce the model now, so that jobs sent
          // while it loads wait for it (this host claims nothing before 'ready').
          log.info({ model: m.data.info.id }, 'painter warming up: loading the model; jobs for it wait in the queue');
          void this.o.queue
            .serve?.(this.workerId, m.data.info)
            .catch((err: unknown) => log.warn({ err }, 'could not announce the model while it loads'));
        } else if (m.data.type === 'ready') {
          clearTimeout(timer);
          this.painterInfo = m.data.info;
          resolve(m.data.info);
        } else if (m.data.type === 'init-error') {
          clearTimeout(timer);
          reject(new PainterLoadError(m.data.message));
          child.kill('SIGKILL');
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new PainterLoadError(`the painter process exited while loading (${signal ?? `exit code ${code}`})`));
      });
    });
    child.on('error', (err) => log.warn({ err }, 'painter process channel error'));
    child.on('message', (raw) => this.onChildMessage(raw));
    child.on('exit', (code, signal) => this.onChildExit(child, code, signal));
    this.sendTo(child, { type: 'init', painterModule: this.o.painterModule, options: this.o.painterOptions });
    return this.childReady;
  }

  private onChildExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    this.child = undefined;
    this.childReady = undefined;
    const running = this.running;
    if (running) {
      const how = signal ? `was killed (${signal})` : `exited (code ${code})`;
      log.error({ jobId: running.job.id, code, signal }, 'painter process died during a job');
      void this.o.queue
        .abandon(running.job.id, this.workerId, `the painting process ${how} while painting`)
        .finally(() => this.endRun(running));
    }
    if (this.stopping) return;
    const delay = this.respawnDelay;
    this.respawnDelay = Math.min(this.respawnDelay * 2, 30_000);
    setTimeout(() => {
      if (this.stopping) return;
      this.spawn().then(
        () => {
          this.respawnDelay = this.o.respawnMs;
          void this.tick();
        },
        (e: unknown) => log.error({ err: e }, 'painter did not come back after a crash; retrying'),
      );
    }, delay).unref();
  }

  private onChildMessage(raw: unknown): void {
    const parsed = ChildMessageSchema.safeParse(raw);
    if (!parsed.success) {
      log.error({ issues: parsed.error.issues }, 'unreadable message from the painter process');
      return;
    }
    const m: ChildMessage = parsed.data;
    const running = this.running;
    if (m.type === 'loading' || m.type === 'ready' || m.type === 'init-error') return;
    if (!running || running.job.id !== m.jobId) return;
    if (m.type === 'progress') void this.onProgress(running, m.step, m.total, m.preview);
    else if (m.type === 'result') void this.onResult(running, m.png, m.artifacts, m.paintMs);
    else void this.onError(running, m.message, m.cancelled);
  }

  private artifactDir(job: Job): string {
    const id = job.request.generationId;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new Error(`generation id "${id}" is not safe as a folder name`);
    const dir = path.join(this.o.dataDir, 'artifacts', id);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  private async onProgress(r: Running, step: number, total: number, preview?: Uint8Array): Promise<void> {
    // Painters need not preview every step: the newest preview stays on disk until a newer one arrives.
    if (preview && preview.length > 0) {
      r.previewPath = path.join(this.artifactDir(r.job), 'preview.png');
      writeAtomic(r.previewPath, preview);
    }
    const now = Date.now();
    // The last step always goes through so the bot can show "k/k" before the image arrives.
    if (now - r.lastProgressAt < this.o.progressEveryMs && step < total) return;
    r.lastProgressAt = now;
    const state = await this.o.queue.progress(r.job.id, this.workerId, { step, total, previewPath: r.previewPath });
    this.react(r, state);
  }

  private react(r: Running, state: { held: boolean; cancelRequested: boolean }): void {
    if (!state.held && !r.lost) {
      // The queue gave the job to someone else (our lease ran out): stop painting, keep nothing.
      r.lost = true;
      log.warn({ jobId: r.job.id }, 'lost the lease on a running job; stopping it');
      this.sendCancel(r);
    } else if (state.cancelRequested) {
      this.sendCancel(r);
    }
  }

  private sendCancel(r: Running): void {
    if (r.cancelSent) return;
    r.cancelSent = true;
    const child = this.child;
    if (child) this.sendTo(child, { type: 'cancel', jobId: r.job.id });
    // A painter stuck inside one long step cannot see the signal: the process goes, the job still ends.
    r.timers.push(
      setTimeout(() => {
        if (this.running === r && this.child === child && child) {
          log.warn({ jobId: r.job.id }, 'painter did not stop after cancel; killing its process');
          child.kill('SIGKILL');
        }
      }, this.o.cancelGraceMs),
    );
  }

  private async onResult(
    r: Running,
    png: Uint8Array,
    artifacts: Record<string, Uint8Array>,
    paintMs: number,
  ): Promise<void> {
    try {
      if (r.lost) return;
      const dir = this.artifactDir(r.job);
      const files: Record<string, string> = {};
      for (const [name, data] of Object.entries(artifacts)) {
        if (!isArtifactName(name) || name === 'image.png')
          throw new Error(`the painter returned an artifact named "${name}", which is not a plain file name`);
        files[name] = path.join(dir, name);
        writeAtomic(files[name], data);
      }
      const imagePath = path.join(dir, 'image.png');
      writeAtomic(imagePath, png);
      files['image.png'] = imagePath;
      const info = this.painterInfo ?? { id: 'unknown', version: 'unknown' };
      await this.o.queue.complete(r.job.id, this.workerId, { imagePath, artifacts: files, model: info, paintMs });
    } catch (e) {
      log.error({ err: e, jobId: r.job.id }, 'could not store the result');
      await this.o.queue.fail(r.job.id, this.workerId, `the image could not be saved: ${(e as Error).message}`);
    } finally {
      this.endRun(r);
    }
  }

  private async onError(r: Running, message: string, cancelled: boolean): Promise<void> {
    try {
      if (!r.lost)
        await this.o.queue.fail(r.job.id, this.workerId, cancelled ? 'cancelled' : `painting failed: ${message}`);
    } finally {
      this.endRun(r);
    }
  }

  private endRun(r: Running): void {
    if (this.running !== r) return;
    for (const t of r.timers) clearTimeout(t);
    this.running = undefined;
    r.done();
    if (!this.stopping) setImmediate(() => void this.tick());
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.stopping || this.paused || this.running || !this.child || !this.painterInfo) return;
    this.ticking = true;
    let again = false;
    try {
      await this.childReady;
      const now = Date.now();
      if (now - this.lastRecovery > Math.min(5000, this.o.leaseMs / 2)) {
        this.lastRecovery = now;
        await this.o.queue.recoverStalled();
      }
      if (this.running || this.stopping || this.paused || !this.child) return;
      const job = await this.o.queue.claim(this.workerId, this.o.leaseMs);
      if (!job) {
        // A claim that waits on the queue (BullMQ) is renewed at once, so there is no gap between waits.
        if (this.o.queue.claimWaits) again = true;
        return;
      }
      this.begin(job);
    } catch (e) {
      log.error({ err: e }, 'worker loop error');
    } finally {
      this.ticking = false;
      if (again) setImmediate(() => void this.tick());
    }
  }

  private begin(job: Job): void {
    const child = this.child!;
    const r: Running = { job, lastProgressAt: 0, cancelSent: false, lost: false, timers: [], done: () => {} };
    this.running = r;
    log.info(
      { jobId: job.id, generationId: job.generationId, kind: job.request.kind, attempt: job.attempts },
      'painting',
    );
    const renewEvery = Math.max(50, Math.floor(this.o.leaseMs / 3));
    const renew = setInterval(() => {
      void this.o.queue.renew(job.id, this.workerId, this.o.leaseMs).then((s) => this.react(r, s));
    }, renewEvery);
    r.timers.push(renew as unknown as NodeJS.Timeout);
    r.timers.push(
      setTimeout(() => {
        if (this.running === r) {
          log.error({ jobId: job.id }, 'job took too long; killing the painter process');
          child.kill('SIGKILL');
        }
      }, this.o.jobTimeoutMs),
    );
    void this.send(r, child);
  }

  /** Hands the job to the painter once its styles are this machine's files; a missing style fails it unpainted. */
  private async send(r: Running, child: ChildProcess): Promise<void> {
    let request;
    try {
      request = await resolveRequestStyles(r.job.request, this.o.loraDir ? { loraDir: this.o.loraDir } : {});
    } catch (e) {
      log.warn({ err: e, jobId: r.job.id }, 'a style of the job is missing or differs here; failing it');
      try {
        await this.o.queue.fail(r.job.id, this.workerId, (e as Error).message);
      } finally {
        this.endRun(r);
      }
      return;
    }
    if (this.running !== r) return;
    // Deleted (or lost to another worker) while its files were being hashed: the painter never saw it.
    if (r.cancelSent || r.lost) {
      try {
        if (!r.lost) await this.o.queue.fail(r.job.id, this.workerId, 'cancelled');
      } finally {
        this.endRun(r);
      }
      return;
    }
    this.sendTo(child, { type: 'run', jobId: r.job.id, request });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
