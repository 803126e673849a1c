import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/store/db.ts';
import { SqliteQueue, type Job, type NewJob } from '../../src/queue/index.ts';
import { PainterLoadError, WorkerHost } from '../../src/worker/host.ts';

const FLAT = path.join(import.meta.dirname, 'flat-painter.ts');

const scene = {
  width: 256, height: 128, prompt: 'a red ball', background: '', exclude: [],
  regions: [{ id: 'r1', label: 'a red ball', prompt: 'a shiny red ball', box: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 } }],
};
function newJob(n: number, steps = 4, prompt = 'a red ball'): NewJob {
  return {
    userId: `u${n}`,
    request: { kind: 'generate', generationId: `gen${n}`, params: { scene: { ...scene, prompt }, seed: n, steps, model: 'schnell' } },
    target: { userId: `u${n}`, guildId: 'g', channelId: 'c' },
  };
}

let dir: string;
let db: Db;
let queue: SqliteQueue;
let host: WorkerHost | undefined;

function makeHost(extra: Record<string, unknown>, more: Partial<ConstructorParameters<typeof WorkerHost>[0]> = {}): WorkerHost {
  host = new WorkerHost({
    queue, dataDir: dir, painterModule: FLAT,
    painterOptions: { modelDir: '/nowhere', executionProvider: 'cpu', threads: 1, extra },
    leaseMs: 2000, pollMs: 30, progressEveryMs: 0, cancelGraceMs: 500, respawnMs: 50, ...more,
  });
  return host;
}

async function until(id: string, pred: (j: Job) => boolean, ms = 15_000): Promise<Job> {
  const end = Date.now() + ms;
  for (;;) {
    const j = (await queue.get(id))!;
    if (pred(j)) return j;
    if (Date.now() > end) throw new Error(`job ${id} stuck in ${j.status} (${j.error ?? ''})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sw-worker-'));
  db = openDatabase(dir);
  queue = new SqliteQueue(db, { pollMs: 20 });
});
afterEach(async () => {
  await host?.stop();
  host = undefined;
  await queue.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('worker host (painter in a child process)', () => {
  it('paints a job in the child process, with progress, preview and stored artifacts', async () => {
    const h = makeHost({ stepMs: 5 });
    const info = await h.start();
    expect(info).toEqual({ id: 'flat-test-painter', version: '1' });
    expect(h.childPid).not.toBe(process.pid);
    const steps: number[] = [];
    queue.subscribe((j) => j.progress && steps.push(j.progress.step));
    const { job } = await queue.enqueue(newJob(1, 6));
    const done = await until(job.id, (j) => j.status === 'done');
    expect(done.result!.model).toEqual(info);
    expect(done.result!.imagePath).toBe(path.join(dir, 'artifacts', 'gen1', 'image.png'));
    const meta = await sharp(readFileSync(done.result!.imagePath)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 256, 128]);
    expect(JSON.parse(readFileSync(done.result!.artifacts['scene.json']!, 'utf8')).prompt).toBe('a red ball');
    expect(existsSync(path.join(dir, 'artifacts', 'gen1', 'preview.png'))).toBe(true);
    expect(steps.length).toBeGreaterThan(0);
    expect(Math.max(...steps)).toBe(6);
  });

  it('reports a painter that cannot load, with its reason', async () => {
    const failure = await makeHost({ failInit: 'no transformer/ folder in /nowhere' }).start().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(PainterLoadError);
    expect((failure as Error).message).toMatch(/no transformer\/ folder in \/nowhere/);
  });

  it('fails a job the painter refuses, and goes on with the next', async () => {
    await makeHost({ stepMs: 1, failOnPrompt: 'forbidden' }).start();
    const a = await queue.enqueue(newJob(1, 2, 'a forbidden thing'));
    const b = await queue.enqueue(newJob(2, 2));
    expect((await until(a.job.id, (j) => j.status === 'failed')).error).toMatch(/painting failed: cannot paint "forbidden"/);
    await until(b.job.id, (j) => j.status === 'done');
  });

  it('cancels a running job through the abort signal; the same process takes the next job', async () => {
    const h = makeHost({ stepMs: 40 });
    await h.start();
    const pid = h.childPid;
    const a = await queue.enqueue(newJob(1, 200));
    const b = await queue.enqueue(newJob(2, 2));
    await until(a.job.id, (j) => (j.progress?.step ?? 0) >= 2);
    expect(await queue.cancel(a.job.id, 'deleted by the user')).toBe('cancelling');
    const t0 = Date.now();
    const cancelled = await until(a.job.id, (j) => j.status !== 'running');
    expect(cancelled.status).toBe('cancelled');
    expect(Date.now() - t0).toBeLessThan(2000);
    await until(b.job.id, (j) => j.status === 'done');
    expect(h.childPid).toBe(pid);
    expect(existsSync(path.join(dir, 'artifacts', 'gen1', 'image.png'))).toBe(false);
  });

  it('kills a painter that ignores the cancel, ends the job cancelled and starts a new process', async () => {
    const h = makeHost({ stepMs: 5, ignoreAbort: true });
    await h.start();
    const pid = h.childPid;
    const a = await queue.enqueue(newJob(1, 4));
    await until(a.job.id, (j) => j.progress?.step === 4);
    await queue.cancel(a.job.id, 'deleted by the user');
    expect((await until(a.job.id, (j) => j.status !== 'running')).status).toBe('cancelled');
    const end = Date.now() + 10_000;
    while ((h.childPid === pid || h.childPid === undefined || !h.info) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(h.childPid).not.toBe(pid);
  });

  it('a painter process killed mid-job: the job is re-queued once and finished by the new process', async () => {
    const h = makeHost({ stepMs: 30 });
    await h.start();
    const { job } = await queue.enqueue(newJob(1, 30));
    await until(job.id, (j) => (j.progress?.step ?? 0) >= 2);
    process.kill(h.childPid!, 'SIGKILL');
    const requeued = await until(job.id, (j) => j.status === 'queued' || j.attempts === 2);
    expect(requeued.note ?? '').toMatch(/killed \(SIGKILL\) while painting; it was put back in the queue/);
    const done = await until(job.id, (j) => j.status === 'done');
    expect(done.attempts).toBe(2);
  });

  it('a job that kills the painter twice fails with a message instead of running a third time', async () => {
    const h = makeHost({ stepMs: 30 });
    await h.start();
    const { job } = await queue.enqueue(newJob(1, 60));
    for (let attempt = 1; attempt <= 2; attempt++) {
      await until(job.id, (j) => j.attempts === attempt && (j.progress?.step ?? 0) >= 1);
      process.kill(h.childPid!, 'SIGKILL');
    }
    const failed = await until(job.id, (j) => j.status === 'failed');
    expect(failed.error).toMatch(/started 2 times/);
    expect(failed.attempts).toBe(2);
  });
});
