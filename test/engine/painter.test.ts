import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPainter } from '../../src/worker/engine-painter.ts';
import { readRgb8, repaintPixels } from '../../src/engine/pipeline/image.ts';
import { readTrajectory } from '../../src/engine/pipeline/trajectory.ts';
import { PaintRequestSchema, type PaintRequest } from '../../src/queue/schema.ts';
import { applyEdit } from '../../src/scene/edit.ts';
import type { Scene } from '../../src/scene/schema.ts';
import { editToRepaintParams, sceneToRagParams } from '../../src/paint/scene-to-rag.ts';
import type { GenerationParams } from '../../src/store/schema.ts';
import type { Painter, PaintOutput } from '../../src/worker/painter.ts';
import { fixture } from '../support/fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-painter-'));
let painter: Painter;
beforeAll(async () => {
  painter = await createPainter({
    modelDir: fixture('tiny-flux-dev'),
    executionProvider: 'cpu',
    threads: 2,
    extra: { previewEvery: 2 },
  });
});
afterAll(async () => {
  await painter.close?.();
  rmSync(tmp, { recursive: true, force: true });
});

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

/** Stores a result as the worker host does: image.png plus every artifact, by name. */
function store(id: string, out: PaintOutput): Record<string, string> {
  const dir = path.join(tmp, id);
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = { 'image.png': path.join(dir, 'image.png') };
  writeFileSync(files['image.png']!, out.png);
  for (const [name, bytes] of Object.entries(out.artifacts)) writeFileSync((files[name] = path.join(dir, name)), bytes);
  return files;
}

async function paint(request: PaintRequest) {
  const progress: { step: number; total: number; preview: boolean }[] = [];
  const out = await painter.paint(PaintRequestSchema.parse(request), {
    onProgress: (step, total, preview) => progress.push({ step, total, preview: preview !== undefined }),
    signal: new AbortController().signal,
  });
  return { out, progress };
}

/** Largest channel difference (0–255) outside the repaint area, and how many pixels differ inside. */
async function outsideInside(a: Uint8Array, b: Uint8Array, area: Uint8Array) {
  const [x, y] = [await readRgb8(a), await readRgb8(b)];
  let outside = 0;
  let inside = 0;
  for (let p = 0; p < area.length; p++) {
    let d = 0;
    for (let c = 0; c < 3; c++) d = Math.max(d, Math.abs(x.data[p * 3 + c]! - y.data[p * 3 + c]!));
    if (area[p]) inside += d > 0 ? 1 : 0;
    else outside = Math.max(outside, d);
  }
  return { outside, inside };
}

describe('engine painter (src/worker/engine-painter.ts) on tiny-flux-dev', () => {
  const genParams: GenerationParams = { scene, seed: 42, steps: 4, model: 'flux.1-dev' };
  let gen: { out: PaintOutput; files: Record<string, string> };
  let rep: { out: PaintOutput; files: Record<string, string>; params: GenerationParams };

  it('reports its model from the checkpoint', () => {
    expect(painter.info.id).toBe('flux.1-dev');
    expect(painter.info.version).toMatch(/^engine \d+; weights [0-9a-f]{12}$/);
  });

  it('generate: a Scene (no precomputed RAG parameters) → PNG, trajectory artifact, progress every step with previews', async () => {
    const { out, progress } = await paint({ kind: 'generate', generationId: 'g1', params: genParams });
    expect(progress.map((p) => `${p.step}/${p.total}`)).toEqual(['1/4', '2/4', '3/4', '4/4']);
    expect(progress.map((p) => p.preview)).toEqual([false, true, false, false]);
    const meta = await sharp(out.png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 128, 128]);
    expect(Object.keys(out.artifacts)).toEqual(['trajectory.safetensors']);
    gen = { out, files: store('g1', out) };
    // The same request with the RAG parameters the bot would attach paints the same image.
    const rag = sceneToRagParams(scene, { model: 'flux.1-dev', seed: 42, steps: 4 });
    const again = await paint({ kind: 'generate', generationId: 'g1b', params: { ...genParams, rag } });
    expect(Buffer.from(again.out.png).equals(Buffer.from(out.png))).toBe(true);
  });

  it("repaint of a first generation (regions from the edit, mask derived here): pixels outside the dilated mask are the parent's", async () => {
    const applied = applyEdit(scene, {
      kind: 'change',
      update: [{ id: 'r2', label: 'a blue cup', prompt: 'a blue ceramic cup' }],
      add: [],
      remove: [],
    });
    const params: GenerationParams = {
      scene: applied.scene,
      seed: 42,
      steps: 4,
      model: 'flux.1-dev',
      repaint: { instruction: 'make the lemonade a blue cup', regions: applied.repaint },
    };
    const { out, progress } = await paint({
      kind: 'repaint',
      generationId: 'g2',
      params,
      parent: { generationId: 'g1', params: genParams, artifacts: gen.files },
    });
    expect(progress.at(-1)).toMatchObject({ step: 4, total: 4 });
    const plan = await editToRepaintParams(
      sceneToRagParams(scene, { model: 'flux.1-dev', seed: 42, steps: 4 }),
      applied,
      { model: 'flux.1-dev' },
    );
    if (plan.mode !== 'repaint') throw new Error('expected a repaint');
    const area = await repaintPixels(plan.mask, 128, 128);
    const d = await outsideInside(out.png, gen.out.png, area);
    expect(d.outside).toBe(0);
    expect(d.inside).toBeGreaterThan(500);
    rep = { out, files: store('g2', out), params };
    expect(readTrajectory(rep.files['trajectory.safetensors']!).kind).toBe('repaint');
  });

  it('repaint of a repaint (stored trajectory, at most two passes per step): outside its mask it is its parent', async () => {
    const applied = applyEdit(rep.params.scene, {
      kind: 'change',
      update: [{ id: 'r1', label: 'a green pear', prompt: 'a ripe green pear' }],
      add: [],
      remove: [],
    });
    const params: GenerationParams = {
      scene: applied.scene,
      seed: 42,
      steps: 4,
      model: 'flux.1-dev',
      repaint: { instruction: 'make the apple a pear', regions: applied.repaint },
    };
    const { out } = await paint({
      kind: 'repaint',
      generationId: 'g3',
      params,
      parent: { generationId: 'g2', params: rep.params, artifacts: rep.files },
    });
    const plan = await editToRepaintParams(
      sceneToRagParams(rep.params.scene, { model: 'flux.1-dev', seed: 42, steps: 4 }),
      applied,
      { model: 'flux.1-dev' },
    );
    if (plan.mode !== 'repaint') throw new Error('expected a repaint');
    const d = await outsideInside(out.png, rep.out.png, await repaintPixels(plan.mask, 128, 128));
    expect(d.outside).toBe(0);
    expect(d.inside).toBeGreaterThan(500);
  });

  it('refuses a repaint without its parent, and an edit that repaint cannot express, with what to do', async () => {
    const params: GenerationParams = {
      ...genParams,
      repaint: { instruction: 'x', regions: [{ id: 'r1', oldBox: scene.regions[0]!.box }] },
    };
    await expect(paint({ kind: 'repaint', generationId: 'g4', params })).rejects.toThrow(/needs its parent generation/);
    await expect(
      paint({
        kind: 'repaint',
        generationId: 'g5',
        params: { ...genParams, repaint: { instruction: 'x', regions: [] } },
        parent: { generationId: 'g1', params: genParams, artifacts: gen.files },
      }),
    ).rejects.toThrow(/needs the regions that changed/);
  });

  it('cancellation: an aborted signal stops the job', async () => {
    const ac = new AbortController();
    const p = painter.paint(
      { kind: 'generate', generationId: 'g6', params: genParams },
      {
        onProgress: (step) => {
          if (step === 1) ac.abort();
        },
        signal: ac.signal,
      },
    );
    await expect(p).rejects.toThrow(/cancelled/);
  });
});
