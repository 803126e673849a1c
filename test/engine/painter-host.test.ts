import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRgb8, repaintPixels } from '../../src/engine/pipeline/image.ts';
import { SqliteQueue, type Job } from '../../src/queue/index.ts';
import { applyEdit } from '../../src/scene/edit.ts';
import type { Scene } from '../../src/scene/schema.ts';
import { editToRepaintParams, sceneToRagParams } from '../../src/paint/scene-to-rag.ts';
import { openDatabase, type Db } from '../../src/store/db.ts';
import type { GenerationParams } from '../../src/store/schema.ts';
import { WorkerHost } from '../../src/worker/host.ts';
import { ENGINE_PAINTER_MODULE } from '../../src/worker/painter.ts';
import { fixture } from '../support/fixtures.ts';

/* The engine painter in the worker's child process, end to end: queue → child → PNG + artifacts on disk → repaint. */

const scene: Scene = {
  width: 128,
  height: 128,
  prompt: 'a red apple and a glass of lemonade on a wooden table',
  background: 'a wooden table',
  exclude: [],
  regions: [
    { id: 'r1', label: 'a red apple', prompt: 'a shiny red apple', box: { x: 0, y: 0.25, w: 0.5, h: 0.5 } },
    {
      id: 'r2',
      label: 'a glass of lemonade',
      prompt: 'a tall glass of lemonade',
      box: { x: 0.5, y: 0.25, w: 0.5, h: 0.5 },
    },
  ],
};
const params: GenerationParams = {
  scene,
  seed: 9,
  steps: 4,
  model: 'flux.1-dev',
  rag: sceneToRagParams(scene, { model: 'flux.1-dev', seed: 9, steps: 4 }),
};
const target = { userId: 'u', guildId: 'g', channelId: 'c' };

let dir: string;
let db: Db;
let queue: SqliteQueue;
let host: WorkerHost;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sw-engine-host-'));
  db = openDatabase(dir);
  queue = new SqliteQueue(db, { pollMs: 20 });
  host = new WorkerHost({
    queue,
    dataDir: dir,
    painterModule: ENGINE_PAINTER_MODULE,
    painterOptions: {
      modelDir: fixture('tiny-flux-dev'),
      executionProvider: 'cpu',
      threads: 2,
      extra: { previewEvery: 1 },
    },
    pollMs: 30,
    progressEveryMs: 0,
  });
  await host.start();
}, 60_000);
afterAll(async () => {
  await host?.stop();
  await queue?.close();
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function until(id: string, pred: (j: Job) => boolean, ms = 50_000): Promise<Job> {
  const end = Date.now() + ms;
  for (;;) {
    const j = (await queue.get(id))!;
    if (pred(j)) return j;
    if (Date.now() > end) throw new Error(`job ${id} stuck in ${j.status} (${j.error ?? ''})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('engine painter in the worker child process', () => {
  it('paints a generation and a repaint of it from the stored artifacts', async () => {
    const steps: number[] = [];
    queue.subscribe((j) => j.progress && steps.push(j.progress.step));
    const { job } = await queue.enqueue({
      userId: 'u',
      request: { kind: 'generate', generationId: 'gen1', params },
      target,
    });
    const done = await until(job.id, (j) => j.status === 'done' || j.status === 'failed');
    expect(done.error).toBeNull();
    expect(done.result!.model.id).toBe('flux.1-dev');
    expect(Object.keys(done.result!.artifacts).sort()).toEqual(['image.png', 'trajectory.safetensors']);
    expect(Math.max(...steps)).toBe(4);
    expect(existsSync(path.join(dir, 'artifacts', 'gen1', 'preview.png'))).toBe(true);

    const applied = applyEdit(scene, {
      kind: 'change',
      update: [{ id: 'r1', label: 'a green pear', prompt: 'a ripe green pear' }],
      add: [],
      remove: [],
    });
    const plan = await editToRepaintParams(params.rag as never, applied, { model: 'flux.1-dev' });
    if (plan.mode !== 'repaint') throw new Error('expected a repaint');
    const repaint: GenerationParams = {
      scene: applied.scene,
      seed: 9,
      steps: 4,
      model: 'flux.1-dev',
      repaint: { instruction: 'pear', regions: applied.repaint },
    };
    const r = await queue.enqueue({
      userId: 'u',
      target,
      request: {
        kind: 'repaint',
        generationId: 'gen2',
        params: repaint,
        parent: { generationId: 'gen1', params, artifacts: done.result!.artifacts },
      },
    });
    const rdone = await until(r.job.id, (j) => j.status === 'done' || j.status === 'failed');
    expect(rdone.error).toBeNull();
    const area = await repaintPixels(plan.mask, 128, 128);
    const [a, b] = [
      await readRgb8(readFileSync(done.result!.imagePath)),
      await readRgb8(readFileSync(rdone.result!.imagePath)),
    ];
    let outside = 0;
    let inside = 0;
    for (let p = 0; p < area.length; p++) {
      const d = Math.max(...[0, 1, 2].map((c) => Math.abs(a.data[p * 3 + c]! - b.data[p * 3 + c]!)));
      if (area[p]) inside += d > 0 ? 1 : 0;
      else outside = Math.max(outside, d);
    }
    expect(outside).toBe(0);
    expect(inside).toBeGreaterThan(500);
  }, 90_000);
});
