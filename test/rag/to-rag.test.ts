import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { hbTokenBoxes } from '../../src/rag/boxes.ts';
import { ragLayout, validateRagParams } from '../../src/rag/params.ts';
import { splitBreaks } from '../../src/rag/split-ratio.ts';
import { applyEdit } from '../../src/scene/edit.ts';
import { normalizeScene } from '../../src/scene/normalize.ts';
import type { Region, Scene } from '../../src/scene/schema.ts';
import {
  editToRepaintParams,
  editToRepaintPasses,
  sceneToRag,
  sceneToRagParams,
} from '../../src/paint/scene-to-rag.ts';
import { loadModelManifest, modelIdForTransformerConfig } from '../../src/engine/model-manifest.ts';

const LIMITS = { minSize: 256, maxSize: 1536 };

function scene(regions: Omit<Region, 'id'>[], extra: Partial<Scene> = {}): Scene {
  return normalizeScene(
    {
      width: 1024,
      height: 1024,
      prompt: 'a test picture',
      background: 'a plain room',
      exclude: [],
      regions: regions.map((r, i) => ({ id: `r${i + 1}`, ...r })),
      ...extra,
    },
    LIMITS,
  );
}

const balloonDog = scene([
  { label: 'Balloon', prompt: 'a red balloon floating', box: { x: 0.1, y: 0.55, w: 0.8, h: 0.4 } },
  { label: 'Dog', prompt: 'a fluffy dog', box: { x: 0.1, y: 0.05, w: 0.8, h: 0.45 } },
]);

/** Fraction of each region's token area that lies in the cells carrying its prompt. */
function coverage(s: Scene): number[] {
  const { grid } = sceneToRag(s);
  const rows = s.height / 16,
    cols = s.width / 16;
  return s.regions.map((r) => {
    const rr = {
      r0: Math.round(r.box.y * rows),
      r1: Math.round((r.box.y + r.box.h) * rows),
      c0: Math.round(r.box.x * cols),
      c1: Math.round((r.box.x + r.box.w) * cols),
    };
    let cov = 0;
    for (const c of grid.cells) {
      if (!c.regionIds.includes(r.id)) continue;
      const h = Math.min(rr.r1, c.rect.r1) - Math.max(rr.r0, c.rect.r0);
      const w = Math.min(rr.c1, c.rect.c1) - Math.max(rr.c0, c.rect.c0);
      if (h > 0 && w > 0) cov += h * w;
    }
    return cov / ((rr.r1 - rr.r0) * (rr.c1 - rr.c0));
  });
}

describe('Scene → RAG parameters', () => {
  it('balloon over dog: boxes on the token grid, two row cells, BREAK prompts in row-major order', () => {
    const p = sceneToRagParams(balloonDog);
    expect(p.HB_prompt_list).toEqual(['Balloon', 'Dog']);
    const boxes = hbTokenBoxes(p);
    // normalizeScene snaps edges to the nearest grid line: y 0.55·64 = 35.2 → 35, 0.95·64 = 60.8 → 61.
    expect(boxes[0]).toEqual({ r0: 35, r1: 61, c0: 6, c1: 58 });
    expect(boxes[1]).toEqual({ r0: 3, r1: 32, c0: 6, c1: 58 });
    const layout = ragLayout(p);
    expect(layout.grid.cells.map((c) => [c.rows.start, c.rows.end, c.cols.start, c.cols.end])).toEqual([
      [0, 33, 0, 64],
      [33, 64, 0, 64],
    ]);
    expect(splitBreaks(p.SR_prompt).map((s) => s.trim())).toEqual(['a fluffy dog', 'a red balloon floating']);
    expect(p.prompt).toBe('a test picture');
  });

  it('three cakes in a row: one row of columns, each cake in its own cell', () => {
    const s = scene(
      [0, 1, 2].map((i) => ({
        label: `cake ${i}`,
        prompt: `a cake number ${i}`,
        box: { x: 0.05 + i * 0.33, y: 0.2, w: 0.25, h: 0.6 },
      })),
    );
    const { params, grid } = sceneToRag(s);
    expect(params.SR_hw_split_ratio).not.toContain(';');
    expect(grid.cells.map((c) => c.regionIds)).toEqual([['r1'], ['r2'], ['r3']]);
    expect(coverage(s)).toEqual([1, 1, 1]);
  });

  it('empty space of a quarter of the image or more becomes a background cell', () => {
    const s = scene([{ label: 'cat', prompt: 'a sleeping cat', box: { x: 0.3, y: 0.6, w: 0.4, h: 0.35 } }]);
    const { grid } = sceneToRag(s);
    expect(grid.cells.length).toBeGreaterThanOrEqual(2);
    const bg = grid.cells.filter((c) => !c.regionIds.length);
    expect(bg.length).toBeGreaterThan(0);
    for (const c of bg) expect(c.prompt).toBe('a plain room');
    expect(coverage(s)[0]).toBe(1);
  });

  it('no regions: hard binding off, soft refinement off, still two cells', () => {
    const p = sceneToRagParams(scene([], { background: '' }));
    expect(p.HB_replace).toBe(-1);
    expect(p.HB_prompt_list).toEqual([]);
    expect(p.SR_delta).toBe(0);
    expect(splitBreaks(p.SR_prompt).map((x) => x.trim())).toEqual(['a test picture', 'a test picture']);
  });

  it('one region filling the image: two cells that both carry it', () => {
    const s = scene([{ label: 'sea', prompt: 'a stormy sea', box: { x: 0, y: 0, w: 1, h: 1 } }]);
    const { grid } = sceneToRag(s);
    expect(grid.cells).toHaveLength(2);
    expect(grid.cells.every((c) => c.regionIds.includes('r1'))).toBe(true);
  });

  it('prompts cannot break the BREAK structure or inject grid keywords', () => {
    const s = scene([
      {
        label: 'a BREAKFAST table',
        prompt: 'a table BREAK with ADDROW breakfast',
        box: { x: 0.05, y: 0.1, w: 0.4, h: 0.8 },
      },
      { label: 'a chair', prompt: 'a chair', box: { x: 0.55, y: 0.1, w: 0.4, h: 0.8 } },
    ]);
    const p = sceneToRagParams(s);
    expect(splitBreaks(p.SR_prompt)).toHaveLength(ragLayout(p).grid.cells.length);
    expect(p.SR_prompt.toUpperCase()).not.toContain('ADDROW');
  });

  it('per-model defaults come from models/*.json', () => {
    const dev = sceneToRagParams(balloonDog, { model: 'flux.1-dev' });
    expect(dev).toMatchObject({ HB_replace: 2, num_inference_steps: 20, guidance_scale: 3.5, SR_delta: 1 });
    const schnell = sceneToRagParams(balloonDog, { model: 'flux.1-schnell' });
    expect(schnell).toMatchObject({ HB_replace: 1, SR_delta: 0.5, num_inference_steps: 4 });
    expect(sceneToRagParams(balloonDog, { model: 'flux.1-schnell', seed: 7, steps: 2, hbReplace: 0 })).toMatchObject({
      seed: 7,
      num_inference_steps: 2,
      HB_replace: 0,
    });
    expect(loadModelManifest('flux.1-schnell').maxSequenceLength).toBe(256);
    expect(modelIdForTransformerConfig({ guidance_embeds: true })).toBe('flux.1-dev');
    expect(() => loadModelManifest('sdxl')).toThrow(/unknown model "sdxl"/);
  });

  it('the same scene gets the same seed; another scene another', () => {
    expect(sceneToRagParams(balloonDog).seed).toBe(sceneToRagParams(balloonDog).seed);
    expect(sceneToRagParams({ ...balloonDog, prompt: 'other' }).seed).not.toBe(sceneToRagParams(balloonDog).seed);
  });
});

describe('split-ratio derivation invariants over random scenes', () => {
  let state = 12345;
  const rnd = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const sizes: [number, number][] = [
    [1024, 1024],
    [1536, 768],
    [768, 1536],
    [512, 512],
    [1344, 768],
    [256, 1024],
    [1200, 800],
  ];

  function randomScene(separated: boolean): Scene {
    const [width, height] = sizes[Math.floor(rnd() * sizes.length)]!;
    const n = Math.floor(rnd() * 9);
    const regions: Region[] = [];
    for (let tries = 0; regions.length < n && tries < 200; tries++) {
      const w = 0.05 + rnd() * (separated ? 0.5 : 0.7),
        h = 0.05 + rnd() * (separated ? 0.5 : 0.7);
      const box = { x: rnd() * (1 - w), y: rnd() * (1 - h), w, h };
      const clash = regions.some(
        (o) =>
          Math.min(o.box.x + o.box.w, box.x + box.w) - Math.max(o.box.x, box.x) > -0.03 &&
          Math.min(o.box.y + o.box.h, box.y + box.h) - Math.max(o.box.y, box.y) > -0.03,
      );
      if (separated && clash) continue;
      regions.push({
        id: `r${regions.length + 1}`,
        label: `thing ${regions.length}`,
        prompt: `a thing number ${regions.length}`,
        box,
      });
    }
    return normalizeScene({ width, height, prompt: 'p', background: 'bg', exclude: [], regions }, LIMITS);
  }

  it('always a partition, cell count = BREAK count, params valid, every box mostly inside its cells (600 scenes)', () => {
    let worstAny = 1,
      worstSeparated = 1;
    for (let t = 0; t < 600; t++) {
      const separated = t % 2 === 0;
      const s = randomScene(separated);
      const { params, grid, boxes } = sceneToRag(s);
      validateRagParams(params);
      const layout = ragLayout(params);
      // Partition: every token belongs to exactly one cell.
      const count = new Int32Array(layout.gridRows * layout.gridCols);
      for (const c of layout.grid.cells)
        for (let r = c.at.rows.start; r < c.at.rows.end; r++)
          for (let k = c.at.cols.start; k < c.at.cols.end; k++) count[r * layout.gridCols + k]!++;
      expect(count.every((v) => v === 1)).toBe(true);
      expect(layout.grid.cells.length).toBeGreaterThanOrEqual(2);
      expect(splitBreaks(params.SR_prompt)).toHaveLength(layout.grid.cells.length);
      expect(grid.cells).toHaveLength(layout.grid.cells.length);
      // Hard-binding boxes are exactly the regions' token rectangles.
      expect(hbTokenBoxes(params)).toEqual(boxes.map((b) => b.rect));
      for (const v of coverage(s)) {
        worstAny = Math.min(worstAny, v);
        if (separated) worstSeparated = Math.min(worstSeparated, v);
      }
    }
    expect(worstAny).toBeGreaterThanOrEqual(0.5);
    expect(worstSeparated).toBeGreaterThanOrEqual(0.6);
  });
});

describe('Edit → repaint parameters', () => {
  const cats = scene([
    { label: 'a tabby cat', prompt: 'a tabby cat sitting', box: { x: 0.05, y: 0.3, w: 0.35, h: 0.5 } },
    { label: 'a black cat', prompt: 'a black cat sitting', box: { x: 0.6, y: 0.3, w: 0.35, h: 0.5 } },
  ]);
  const original = sceneToRagParams(cats, { seed: 42 });

  async function blackTokens(png: Buffer): Promise<{ r0: number; r1: number; c0: number; c1: number }> {
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    let r0 = Infinity,
      r1 = -1,
      c0 = Infinity,
      c1 = -1;
    for (let y = 0; y < info.height; y++)
      for (let x = 0; x < info.width; x++) {
        if (data[(y * info.width + x) * info.channels]! === 0) {
          r0 = Math.min(r0, y);
          r1 = Math.max(r1, y + 1);
          c0 = Math.min(c0, x);
          c1 = Math.max(c1, x + 1);
        }
      }
    return { r0, r1, c0, c1 };
  }

  it('changing one region repaints exactly its box (black = repaint) with the same grid', async () => {
    const applied = applyEdit(cats, {
      kind: 'change',
      update: [{ id: 'r1', label: 'a corgi', prompt: 'a corgi sitting' }],
      add: [],
      remove: [],
    });
    const plan = await editToRepaintParams(original, applied);
    expect(plan.mode).toBe('repaint');
    if (plan.mode !== 'repaint') return;
    expect(plan.regionIds).toEqual(['r1']);
    // The left cat's box in pixels: x 0.05·1024 → 48 (snapped to 16), y 0.3·1024 → 304.
    expect(await blackTokens(plan.mask)).toEqual({ r0: 304, r1: 816, c0: 48, c1: 416 });
    expect(plan.params.Repainting_HB_prompt).toBe('a corgi');
    expect(plan.params.Repainting_SR_prompt).toContain('a corgi sitting');
    expect(plan.params.Repainting_SR_prompt).not.toContain('tabby');
    expect(splitBreaks(plan.params.Repainting_SR_prompt!)).toHaveLength(splitBreaks(original.SR_prompt).length);
    expect(plan.params).toMatchObject({
      seed: 42,
      SR_hw_split_ratio: original.SR_hw_split_ratio,
      Repainting_HB_replace: 3,
      Repainting_single: 0,
    });
    expect(plan.params.Repainting_mask).toBe(plan.mask);
  });

  it('a removal repaints the old box with the background', async () => {
    const applied = applyEdit(cats, { kind: 'change', update: [], add: [], remove: ['r2'] });
    const plan = await editToRepaintParams(original, applied, { model: 'flux.1-schnell', repaintSeed: 9 });
    expect(plan.mode).toBe('repaint');
    if (plan.mode !== 'repaint') return;
    expect(plan.params.Repainting_HB_prompt).toBe('a plain room');
    expect(plan.params.Repainting_seed).toBe(9);
    expect(plan.params.Repainting_HB_replace).toBe(1);
    expect((await blackTokens(plan.mask)).c0).toBe(608);
  });

  it('starts the repaint branch before the last step of a short run', async () => {
    const applied = applyEdit(cats, { kind: 'change', update: [{ id: 'r1', label: 'a corgi' }], add: [], remove: [] });
    const short = await editToRepaintParams({ ...original, num_inference_steps: 3 }, applied, { model: 'flux.1-dev' });
    expect(short.mode).toBe('repaint');
    if (short.mode === 'repaint') expect(short.params.Repainting_HB_replace).toBe(2);
    const one = await editToRepaintParams({ ...original, num_inference_steps: 1 }, applied, { model: 'flux.1-dev' });
    if (one.mode === 'repaint') expect(one.params.Repainting_HB_replace).toBe(0);
  });

  it('an addition repaints the new box; a move or a new global prompt regenerates with the same seed', async () => {
    const added = applyEdit(cats, {
      kind: 'change',
      update: [],
      add: [{ label: 'a red ball', prompt: 'a small red ball', box: { x: 0.4375, y: 0.75, w: 0.125, h: 0.125 } }],
      remove: [],
    });
    const plan = await editToRepaintParams(original, added);
    expect(plan.mode).toBe('repaint');
    if (plan.mode === 'repaint') expect(await blackTokens(plan.mask)).toEqual({ r0: 768, r1: 896, c0: 448, c1: 576 });
    const moved = applyEdit(cats, {
      kind: 'change',
      update: [{ id: 'r1', box: { x: 0.1, y: 0.1, w: 0.3, h: 0.3 } }],
      add: [],
      remove: [],
    });
    const regen = await editToRepaintParams(original, moved);
    expect(regen.mode).toBe('regenerate');
    if (regen.mode === 'regenerate') expect(regen.params.seed).toBe(42);
    const none = await editToRepaintParams(
      original,
      applyEdit(cats, { kind: 'change', update: [], add: [], remove: [] }),
    );
    expect(none.mode).toBe('unchanged');
  });
});

describe('several regions changed at once: chained repaint passes', () => {
  const parent = scene([
    { label: 'a black cat', prompt: 'a black cat sitting', box: { x: 0.05, y: 0.4, w: 0.35, h: 0.4 } },
    { label: 'a white dog', prompt: 'a white dog lying', box: { x: 0.55, y: 0.4, w: 0.4, h: 0.4 } },
    { label: 'a lamp', prompt: 'a brass lamp', box: { x: 0.42, y: 0.05, w: 0.12, h: 0.3 } },
  ]);
  const original = sceneToRagParams(parent, { seed: 3, steps: 4, model: 'flux.1-schnell' });
  const dark = async (png: Buffer) => {
    const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
    let n = 0;
    for (let i = 0; i < info.width * info.height; i++) if (data[i]! < 128) n++;
    return n;
  };

  it('one pass per region, each with its own mask and label, over the picture as it stands after it', async () => {
    const applied = applyEdit(parent, {
      kind: 'change',
      update: [
        { id: 'r1', label: 'an orange cat', prompt: 'an orange cat sitting' },
        { id: 'r2', label: 'a blue dog', prompt: 'a blue dog lying' },
      ],
      add: [],
      remove: ['r3'],
    });
    const passes = await editToRepaintPasses(original, parent, applied, { model: 'flux.1-schnell' });
    expect(passes.map((p) => p.regionIds)).toEqual([['r1'], ['r2'], ['r3']]);
    expect(passes.map((p) => p.params.Repainting_HB_prompt)).toEqual(['an orange cat', 'a blue dog', 'a plain room']);
    // Pass 1 knows only its own change; pass 2 sees the cat already orange; the lamp goes last.
    expect(passes[0]!.params.Repainting_SR_prompt).toMatch(/orange cat/);
    expect(passes[0]!.params.Repainting_SR_prompt).toMatch(/white dog/);
    expect(passes[0]!.params.Repainting_SR_prompt).not.toMatch(/blue dog/);
    expect(passes[1]!.params.Repainting_SR_prompt).toMatch(/orange cat.*blue dog|blue dog.*orange cat/);
    expect(passes[1]!.params.Repainting_SR_prompt).toMatch(/brass lamp/);
    expect(passes[2]!.params.Repainting_SR_prompt).not.toMatch(/brass lamp/);
    // Each mask is its own box: the three together are the union mask of the single repaint.
    const union = await editToRepaintParams(original, applied, { model: 'flux.1-schnell' });
    if (union.mode !== 'repaint') throw new Error(union.mode);
    const areas = await Promise.all(passes.map((p) => dark(p.mask)));
    expect(areas.reduce((a, b) => a + b, 0)).toBe(await dark(union.mask));
    expect(new Set(passes.map((p) => p.params.Repainting_seed)).size).toBe(3);
    for (const p of passes) validateRagParams(p.params);
  });
});
