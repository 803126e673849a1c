import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import type { RagParams } from '../../src/rag/params.ts';
import { fixture } from '../support/fixtures.ts';
import { cpu } from './checkpoint-support.ts';
import { loraShelf, maxAbsDiff, mergedCheckpoint } from './lora-support.ts';
import { openTransformer } from '../../src/engine/graphs/flux-transformer-session.ts';
import { latentImageIds, textIds } from '../../src/engine/latents.ts';
import { modelTimestep, type StepFeeds } from '../../src/engine/step/step-runner.ts';
import { boxIndex } from '../../src/engine/step/selectors.ts';
import { layerFactors } from '../../src/engine/lora/feeds.ts';
import { StepRunner } from '../../src/engine/step/step-runner.ts';
import { randomLoraFile, writeTestLora } from '../../src/engine/tiny-model/lora.ts';
import { readLoraFile } from '../../src/engine/lora/files/read.ts';
import { benchFeeds } from '../../bench/rag-workload.ts';
import { rectsToMaskPng } from '../../src/rag/mask.ts';

/*
 * LoRA in the step graph (docs/styles.md) on tiny-flux-dev with the real graph builder and ONNX Runtime: the
 * invariants of issue 18. Comparisons through the same nodes are bit for bit; a merged checkpoint computes
 * W'·x instead of W·x + B·(A·x), so it agrees within float32 rounding.
 */
const dev = fixture('tiny-flux-dev');
/** Float32 rounding through 3 steps of the tiny model (values up to ~6); a LoRA's effect is > 100× that. */
const ROUNDING = 2e-4;

const base: RagParams = {
  prompt: 'a red apple and a glass of lemonade on a wooden table',
  HB_prompt_list: ['a red apple', 'a glass of lemonade'],
  HB_m_offset_list: [0, 0.375],
  HB_n_offset_list: [0, 0.25],
  HB_m_scale_list: [0.625, 0.625],
  HB_n_scale_list: [1, 0.5],
  HB_replace: 2,
  SR_hw_split_ratio: '0.5,0.5',
  SR_delta: 0.5,
  SR_prompt: 'a shiny red apple on the left BREAK a tall glass of lemonade on the right',
  seed: 11,
  height: 128,
  width: 128,
  num_inference_steps: 3,
  guidance_scale: 3.5,
};

const layers = Engine.open({ modelDir: dev, runtime: cpu }).steps.loraLayers;
const everywhere = randomLoraFile(layers, { rank: 4, seed: 1, alpha: 2 });
const attnOnly = randomLoraFile(layers, { rank: 3, seed: 2, only: (n) => /attn\.(to_[qkv]|add_[qkv]_proj)$/.test(n) });
/** A region style on every linear but the timestep/guidance embedders (which take the global styles, docs/styles.md). */
const region = randomLoraFile(layers, {
  rank: 5,
  seed: 3,
  only: (n) => !/_embedder\./.test(n) || /text_embedder/.test(n),
});
const highRank = randomLoraFile(layers, { rank: 129, seed: 4, only: (n) => n === 'proj_out' });
const wrongShape = randomLoraFile(new Map([['transformer_blocks.0.attn.to_q', [48, 32] as const]]), {
  rank: 2,
  seed: 5,
});
const shelf = loraShelf([everywhere, attnOnly, region, highRank, wrongShape]);
const [pEvery, pAttn, pRegion, pHigh, pWrong] = shelf.paths as [string, string, string, string, string];
const merged = mergedCheckpoint(dev, [{ file: everywhere, scale: 0.8 }]);
const mergedRegion = mergedCheckpoint(dev, [{ file: region, scale: -1.5 }]);
afterAll(() => {
  for (const d of [shelf.dir, merged, mergedRegion]) rmSync(d, { recursive: true, force: true });
});

describe('LoRA in the step graph (tiny-flux-dev, 128², 3 steps, HB + SR)', () => {
  const engine = Engine.open({ modelDir: dev, runtime: cpu, loraLoader: shelf.loader });
  afterAll(() => engine.close());

  it('scale 0 gives the output without LoRA bit for bit (global and per-region LoRA terms computed, times 0)', async () => {
    const none = await engine.run(await engine.plan(base), { record: true });
    const zero = await engine.run(
      await engine.plan({
        ...base,
        loras: [{ name: pEvery, scale: 0 }],
        HB_lora_list: [[{ name: pAttn, scale: 0 }], []],
      }),
      { record: true },
    );
    for (let i = 0; i < 3; i++) expect(maxAbsDiff(none.record!.velocity[i]!, zero.record!.velocity[i]!)).toBe(0);
    expect(maxAbsDiff(none.latents, zero.latents)).toBe(0);
  });

  it('a global LoRA at scale s equals the model with W + s·(alpha/rank)·B·A merged into its weights, in every stream', async () => {
    const withLora = await engine.run(await engine.plan({ ...base, loras: [{ name: pEvery, scale: 0.8 }] }));
    const mergedEngine = Engine.open({ modelDir: merged, runtime: cpu });
    const ref = await mergedEngine.run(await mergedEngine.plan(base));
    await mergedEngine.close();
    const plain = await engine.run(await engine.plan(base));
    expect(maxAbsDiff(withLora.latents, ref.latents)).toBeLessThan(ROUNDING);
    expect(maxAbsDiff(withLora.latents, plain.latents)).toBeGreaterThan(100 * ROUNDING);
    expect(withLora.styles).toEqual([{ name: pEvery, scale: 0.8, sha256: everywhere.sha256 }]);
    expect(plain.styles).toBeUndefined();
  });

  it("a region's hard-binding stream is a plain forward of the model with its LoRA merged; the other box's stream is the base model's", async () => {
    const params = { ...base, HB_lora_list: [[], [{ name: pRegion, scale: -1.5 }]] };
    const plan = await engine.plan(params);
    const res = await engine.run(plan, { record: true });
    const rec = res.record!;
    const forward = async (dir: string, k: number, prompt: string, step: number) => {
      const e = Engine.open({ modelDir: dir, runtime: cpu });
      const tr = await openTransformer(e.checkpoint, cpu);
      const cond = engine.conditioning();
      const rect = plan.boxes[k]!.rect;
      const out = await tr.run({
        hidden_states: rec.boxLatents[step]![k]!,
        encoder_hidden_states: await cond.t5(prompt),
        pooled_projections: await cond.clip(prompt),
        timestep: Float32Array.of(modelTimestep(res.schedule.timesteps[step]!)),
        guidance: Float32Array.of(3.5),
        img_ids: latentImageIds(rect.r1 - rect.r0, rect.c1 - rect.c0),
        txt_ids: textIds(512),
      });
      await tr.release();
      await e.close();
      return out.sample!.data as Float32Array;
    };
    for (const step of [0, 1]) {
      const styled = await forward(mergedRegion, 1, 'a glass of lemonade', step);
      expect(maxAbsDiff(styled, rec.boxVelocity[step]![1]!), `step ${step} box 1`).toBeLessThan(1e-4);
      const plainBox = await forward(dev, 0, 'a red apple', step);
      expect(maxAbsDiff(plainBox, rec.boxVelocity[step]![0]!), `step ${step} box 0`).toBeLessThan(1e-5);
    }
    // The style does change its stream.
    const unstyled = await engine.run(await engine.plan(base), { record: true });
    expect(maxAbsDiff(unstyled.record!.boxVelocity[0]![1]!, rec.boxVelocity[0]![1]!)).toBeGreaterThan(1e-2);
  });

  it("a region LoRA whose weights are 0 on every main-pass token changes nothing in the main pass, only in its region's stream", async () => {
    const rect = { r0: 2, r1: 6, c0: 1, c1: 5 };
    const rnd = (n: number, seed: number) =>
      Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.8);
    const cond = engine.conditioning();
    const feeds: StepFeeds = {
      timestep: modelTimestep(800),
      guidance: 3.5,
      imgIds: latentImageIds(8, 8),
      txtIds: textIds(512),
      main: { latents: rnd(64 * 64, 1), txt: await cond.t5(base.prompt), pooled: await cond.clip(base.prompt) },
      boxes: [
        {
          latents: rnd(16 * 64, 2),
          txt: await cond.t5('a red apple'),
          pooled: await cond.clip('a red apple'),
          imgIds: latentImageIds(4, 4),
          index: boxIndex(rect, 8),
        },
      ],
    };
    const plain = await engine.steps.run(feeds);
    const file = { ...attnOnly, path: pAttn };
    const styled = await engine.steps.run({
      ...feeds,
      lora: {
        layers: layerFactors([{ file, scale: 2, name: pAttn }]),
        count: 1,
        main: { img: new Float32Array(64), txt: new Float32Array(1) },
        regional: [Float32Array.of(1)],
      },
    });
    // Its own stream carries it (and hard binding pastes that stream's rows into the box).
    expect(maxAbsDiff(plain.boxes[0]!, styled.boxes[0]!)).toBeGreaterThan(1e-2);
    // The main pass's own LoRA term is zero: without a paste it is untouched, bit for bit.
    const noBox = { ...feeds, boxes: [] };
    const a = await engine.steps.run(noBox);
    const b = await engine.steps.run({
      ...noBox,
      lora: {
        layers: layerFactors([{ file, scale: 2, name: pAttn }]),
        count: 1,
        main: { img: new Float32Array(64), txt: new Float32Array(1) },
        regional: [],
      },
    });
    expect(maxAbsDiff(a.velocity, b.velocity)).toBe(0);
  });

  it('a job without LoRA after one with LoRA gives the same bytes as before it; no job creates a session; a style used again is not read again', async () => {
    const sessions = engine.steps.sessions.length;
    const plan = await engine.plan(base);
    const before = await engine.run(plan);
    const styled = await engine.run(await engine.plan({ ...base, loras: [{ name: pAttn, scale: 1 }] }));
    const reads = shelf.reads.length;
    await engine.run(await engine.plan({ ...base, loras: [{ name: pAttn, scale: 0.5 }] }));
    expect(shelf.reads.length - reads).toBe(0);
    const after = await engine.run(plan);
    expect(Buffer.from(after.latents.buffer).equals(Buffer.from(before.latents.buffer))).toBe(true);
    expect(maxAbsDiff(styled.latents, before.latents)).toBeGreaterThan(1e-2);
    expect(engine.steps.sessions.length).toBe(Math.max(sessions, 1));
  });

  it("a repaint's main pass re-runs its parent bit for bit with the parent's styles; the repaint's styles act inside the mask", async () => {
    const parent = { ...base, loras: [{ name: pEvery, scale: 0.5 }], HB_lora_list: [[{ name: pAttn, scale: 1 }], []] };
    const first = await engine.run(await engine.plan(parent));
    const repaint = {
      ...parent,
      Repainting_mask: await rectsToMaskPng([{ x: 80, y: 48, w: 32, h: 32 }], 128, 128),
      Repainting_prompt: 'a red apple and a blue cup on a wooden table',
      Repainting_SR_prompt: 'a shiny red apple on the left BREAK a blue ceramic cup on the right',
      Repainting_HB_prompt: 'a blue cup',
      Repainting_HB_replace: 1,
      Repainting_seed: 100,
    };
    const styled = await engine.run(await engine.plan({ ...repaint, Repainting_loras: [{ name: pRegion, scale: 1 }] }));
    const unstyled = await engine.run(await engine.plan(repaint));
    expect(maxAbsDiff(styled.latents, first.latents)).toBe(0);
    expect(maxAbsDiff(unstyled.latents, first.latents)).toBe(0);
    expect(maxAbsDiff(styled.repaintLatents!, unstyled.repaintLatents!)).toBeGreaterThan(1e-2);
  });

  it('refuses before any step runs: too many styles, a rank above the limit, a layer of another shape, box lists that do not match the boxes', async () => {
    const runs = () => engine.steps.sessions.reduce((n, s) => n + s.runs, 0);
    const r0 = runs();
    const nine = Array.from({ length: 9 }, (_, i) => ({ name: pEvery, scale: i / 10 }));
    await expect(engine.plan({ ...base, loras: nine })).rejects.toThrow(/9 styles .*at most 8/);
    await expect(engine.run(await engine.plan({ ...base, loras: [{ name: pHigh, scale: 1 }] }))).rejects.toThrow(
      new RegExp(`${pHigh}.*rank 129 on proj_out.*up to 128`),
    );
    await expect(engine.run(await engine.plan({ ...base, loras: [{ name: pWrong, scale: 1 }] }))).rejects.toThrow(
      /transformer_blocks\.0\.attn\.to_q: the LoRA is 48×32 but the model's layer is 32×32/,
    );
    await expect(engine.plan({ ...base, Repainting_loras: [{ name: pAttn, scale: 1 }] })).rejects.toThrow(
      /Repainting_loras is set but these parameters do not repaint/,
    );
    await expect(engine.plan({ ...base, HB_lora_list: [[]] })).rejects.toThrow(
      /HB_lora_list has 1 entries but HB_prompt_list has 2/,
    );
    await expect(
      engine.run(await engine.plan({ ...base, loras: [{ name: '/nowhere/style.safetensors', scale: 1 }] })),
    ).rejects.toThrow(/style file \/nowhere\/style.safetensors does not exist/);
    expect(runs()).toBe(r0);
  });
});

describe('LoRA files read by the engine (lora/files), kohya layout with fused qkv and linear1', () => {
  it('a real file at scale s paints what its layers merged into the weights paint; a second job reads it from memory', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sw-lora-file-'));
    const engine = Engine.open({ modelDir: dev, runtime: cpu });
    try {
      const file = path.join(dir, 'watercolor.safetensors');
      writeTestLora(file, { config: engine.checkpoint.transformerConfig, layout: 'kohya', rank: 4, alpha: 8, seed: 9 });
      const read = await readLoraFile(file, engine.loras.model);
      const m = mergedCheckpoint(dev, [{ file: read, scale: 0.7 }]);
      const styled = await engine.run(await engine.plan({ ...base, loras: [{ name: file, scale: 0.7 }] }));
      const again = await engine.run(
        await engine.plan({ ...base, loras: [{ name: file, scale: 0.7, sha256: read.sha256 }] }),
      );
      expect(engine.loras.reads).toBe(1);
      expect(Buffer.from(again.latents.buffer).equals(Buffer.from(styled.latents.buffer))).toBe(true);
      const me = Engine.open({ modelDir: m, runtime: cpu });
      const ref = await me.run(await me.plan(base));
      await me.close();
      rmSync(m, { recursive: true, force: true });
      expect(maxAbsDiff(styled.latents, ref.latents)).toBeLessThan(ROUNDING);
      await expect(
        engine.run(await engine.plan({ ...base, loras: [{ name: file, scale: 0.7, sha256: 'f'.repeat(64) }] })),
      ).rejects.toThrow(/watercolor.safetensors: the job was made with the file of SHA-256 ffffffffffff…/);
    } finally {
      await engine.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LoRA in the unrolled regional form (providers without Loop)', () => {
  it('gives the same velocities as the Loop form, every stream with its own rows', async () => {
    const e = Engine.open({ modelDir: dev, runtime: cpu });
    const ck = e.checkpoint;
    const loop = StepRunner.forCheckpoint(ck, cpu);
    const unrolled = StepRunner.forCheckpoint(ck, cpu, { regionalLoop: 'unrolled', maxRegions: 3 });
    const { feeds } = benchFeeds(
      ck,
      { boxes: 2, cells: 2, repaint: true, repaintSingle: false, prepass: true },
      { width: 128, height: 128 },
    );
    const file = { ...everywhere, path: pEvery };
    const other = { ...region, path: pRegion };
    const entries = [
      { file, scale: 0.7, name: pEvery },
      { file: other, scale: -1, name: pRegion },
    ];
    const N = feeds.imgIds.length / 3;
    const lora = {
      layers: layerFactors(entries),
      count: 2,
      main: {
        img: Float32Array.from({ length: N * 2 }, (_, i) => (i % 2 ? (i % 7) / 6 : 1)),
        txt: Float32Array.of(1, 0),
      },
      repaint: { img: Float32Array.from({ length: N * 2 }, (_, i) => (i % 2 ? 1 : 0.5)), txt: Float32Array.of(1, 0) },
      regional: [Float32Array.of(1, 1), Float32Array.of(1, 0), Float32Array.of(0, 1)],
    };
    const [a, b] = [await loop.run({ ...feeds, lora }), await unrolled.run({ ...feeds, lora })];
    const plain = await loop.run(feeds);
    expect(b.velocity).toEqual(a.velocity);
    expect(b.boxes).toEqual(a.boxes);
    expect(b.prepass).toEqual(a.prepass);
    expect(b.repaint).toEqual(a.repaint);
    for (const [x, y] of [
      [a.velocity, plain.velocity],
      [a.boxes[0]!, plain.boxes[0]!],
      [a.boxes[1]!, plain.boxes[1]!],
      [a.prepass!, plain.prepass!],
      [a.repaint!, plain.repaint!],
    ] as const)
      expect(maxAbsDiff(x, y)).toBeGreaterThan(1e-3);
    await loop.release();
    await unrolled.release();
    await e.close();
  });
});

for (const [form, bits] of [
  ['int8', 8],
  ['int4', 4],
] as const)
  describe(`LoRA on ${form} base weights (MatMulNBits linears; the LoRA term in the compute type)`, () => {
    const cacheDir = mkdtempSync(path.join(tmpdir(), 'sw-lora-q-'));
    const mergedQ = mergedCheckpoint(dev, [{ file: everywhere, scale: 0.8 }], { quantize: bits });
    afterAll(() => {
      for (const d of [cacheDir, mergedQ]) rmSync(d, { recursive: true, force: true });
    });
    it(`scale 0 is bit for bit the ${form} model; scale s equals the ${form} weights (dequantized) with the LoRA merged`, async () => {
      const q = Engine.open({
        modelDir: dev,
        runtime: cpu,
        loraLoader: shelf.loader,
        weightsCacheDir: cacheDir,
        weights: { transformer: form },
      });
      const none = await q.run(await q.plan(base));
      const zero = await q.run(await q.plan({ ...base, loras: [{ name: pEvery, scale: 0 }] }));
      const styled = await q.run(await q.plan({ ...base, loras: [{ name: pEvery, scale: 0.8 }] }));
      await q.close();
      expect(maxAbsDiff(none.latents, zero.latents)).toBe(0);
      const m = Engine.open({ modelDir: mergedQ, runtime: cpu });
      const ref = await m.run(await m.plan(base));
      await m.close();
      expect(maxAbsDiff(styled.latents, ref.latents)).toBeLessThan(ROUNDING);
      expect(maxAbsDiff(styled.latents, none.latents)).toBeGreaterThan(100 * ROUNDING);
    });
  });
