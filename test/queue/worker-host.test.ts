import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/store/db.ts';
import { SqliteQueue, type Job, type NewJob } from '../../src/queue/index.ts';
import { PainterLoadError, WorkerHost } from '../../src/worker/host.ts';
import { ENGINE_PAINTER_MODULE } from '../../src/worker/painter.ts';
import { TRAJECTORY_ARTIFACT } from '../../src/worker/engine-painter.ts';
import { brokenCheckpoint, TINY_SCHNELL, type BrokenCheckpoint } from './broken-checkpoint.ts';

// The host runs the engine's painter on the tiny FLUX checkpoint. Step time grows with the image size: a
// 512² step takes a few hundred ms on two cores, long enough to cancel or kill a job between steps.
const scene = {
  width: 256,
  height: 128,
  prompt: 'a red ball',
  background: '',
  exclude: [],
  regions: [{ id: 'r1', label: 'a red ball', prompt: 'a shiny red ball', box: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 } }],
};
function newJob(n: number, steps = 4, size?: number, more: Record<string, unknown> = {}): NewJob {
  const s = size ? { ...scene, width: size, height: size } : scene;
  return {
    userId: `u${n}`,
    request: {
      kind: 'generate',
      generationId: `gen${n}`,
      params: { scene: s, seed: n, steps, model: 'schnell', ...more },
    },
    target: { userId: `u${n}`, guildId: 'g', channelId: 'c' },
  };
}

let dir: string;
let db: Db;
let queue: SqliteQueue;
let host: WorkerHost | undefined;
let broken: BrokenCheckpoint | undefined;

function makeHost(
  more: Partial<ConstructorParameters<typeof WorkerHost>[0]> = {},
  modelDir = TINY_SCHNELL,
): WorkerHost {
  host = new WorkerHost({
    queue,
    dataDir: dir,
    painterModule: ENGINE_PAINTER_MODULE,
    painterOptions: { modelDir, executionProvider: 'cpu', threads: 0 },
    leaseMs: 2000,
    pollMs: 30,
    progressEveryMs: 0,
    cancelGraceMs: 500,
    respawnMs: 50,
    ...more,
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
  broken?.remove();
  broken = undefined;
  await queue.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('worker host (painter in a child process)', () => {
  it('paints a job in the child process, with progress, preview and stored artifacts', async () => {
    const h = makeHost();
    const info = await h.start();
    expect(info.id).toBe('flux.1-schnell');
    expect(info.version).toMatch(/^engine \d+; weights [0-9a-f]+$/);
    expect(h.childPid).not.toBe(process.pid);
    const steps: number[] = [];
    queue.subscribe((j) => j.progress && steps.push(j.progress.step));
    const { job } = await queue.enqueue(newJob(1, 6));
    const done = await until(job.id, (j) => j.status === 'done');
    expect(done.result!.model).toEqual(info);
    expect(done.result!.imagePath).toBe(path.join(dir, 'artifacts', 'gen1', 'image.png'));
    const meta = await sharp(readFileSync(done.result!.imagePath)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 256, 128]);
    // What a later repaint of this image needs, stored next to it.
    expect(readFileSync(done.result!.artifacts[TRAJECTORY_ARTIFACT]!).length).toBeGreaterThan(0);
    expect(existsSync(path.join(dir, 'artifacts', 'gen1', 'preview.png'))).toBe(true);
    expect(steps.length).toBeGreaterThan(0);
    expect(Math.max(...steps)).toBe(6);
  });

  it('reports a painter that cannot load, with its reason', async () => {
    broken = brokenCheckpoint('no-transformer');
    const failure = await makeHost({}, broken.dir)
      .start()
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(PainterLoadError);
    expect((failure as Error).message).toMatch(/transformer\/ folder is missing \(model_index\.json lists it\)/);
  });

  it('fails a job the painter refuses, and goes on with the next', async () => {
    await makeHost().start();
    // RAG parameters the engine rejects (a name RAG does not have, none of the required ones).
    const a = await queue.enqueue(newJob(1, 2, undefined, { rag: { HB_prompts: ['a ball'] } }));
    const b = await queue.enqueue(newJob(2, 2));
    expect((await until(a.job.id, (j) => j.status === 'failed')).error).toMatch(
      /painting failed: the job's RAG parameters: .*unknown parameter "HB_prompts"/s,
    );
    await until(b.job.id, (j) => j.status === 'done');
  });

  it('cancels a running job through the abort signal; the same process takes the next job', async () => {
    const h = makeHost();
    await h.start();
    const pid = h.childPid;
    const a = await queue.enqueue(newJob(1, 40, 512));
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

  it('kills a painter stuck inside one long step after the cancel grace, ends the job cancelled and starts a new process', async () => {
    // ORT cannot interrupt a running step and the engine looks at the abort signal only between steps: at
    // 1024² one step of the tiny model takes longer than a 50 ms grace, so the cancel must end in a kill.
    const h = makeHost({ cancelGraceMs: 50 });
    await h.start();
    const pid = h.childPid;
    const a = await queue.enqueue(newJob(1, 2, 1024));
    // Cancel the moment step 1 is reported: the painter is then inside step 2.
    let asked = false;
    const stop = queue.subscribe((j) => {
      if (j.id === a.job.id && !asked && (j.progress?.step ?? 0) >= 1) {
        asked = true;
        void queue.cancel(a.job.id, 'deleted by the user');
      }
    });
    try {
      expect((await until(a.job.id, (j) => j.status !== 'running' && j.status !== 'queued', 60_000)).status).toBe(
        'cancelled',
      );
    } finally {
      stop();
    }
    const end = Date.now() + 15_000;
    while ((h.childPid === pid || h.childPid === undefined || !h.info) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
    expect(h.childPid).not.toBe(pid);
    expect(existsSync(path.join(dir, 'artifacts', 'gen1', 'image.png'))).toBe(false);
  });

  it('a painter process killed mid-job: the job is re-queued once and finished by the new process', async () => {
    const h = makeHost();
    await h.start();
    const { job } = await queue.enqueue(newJob(1, 12, 512));
    await until(job.id, (j) => (j.progress?.step ?? 0) >= 2);
    process.kill(h.childPid!, 'SIGKILL');
    const requeued = await until(job.id, (j) => j.status === 'queued' || j.attempts === 2);
    expect(requeued.note ?? '').toMatch(/killed \(SIGKILL\) while painting; it was put back in the queue/);
    const done = await until(job.id, (j) => j.status === 'done', 30_000);
    expect(done.attempts).toBe(2);
  });

  it('a job that kills the painter twice fails with a message instead of running a third time', async () => {
    const h = makeHost();
    await h.start();
    const { job } = await queue.enqueue(newJob(1, 30, 512));
    for (let attempt = 1; attempt <= 2; attempt++) {
      await until(job.id, (j) => j.attempts === attempt && (j.progress?.step ?? 0) >= 1);
      process.kill(h.childPid!, 'SIGKILL');
    }
    const failed = await until(job.id, (j) => j.status === 'failed');
    expect(failed.error).toMatch(/started 2 times/);
    expect(failed.attempts).toBe(2);
  });
});
