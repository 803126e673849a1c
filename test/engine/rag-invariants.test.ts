import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import { TableConditioning } from '../../src/engine/pipeline/conditioning.ts';
import { plainPlan, type RunPlan } from '../../src/engine/pipeline/run-plan.ts';
import { seededNoise } from '../../src/engine/pipeline/noise-source.ts';
import { openTransformer } from '../../src/engine/graphs/flux-transformer-session.ts';
import { boxIndex } from '../../src/engine/step/selectors.ts';
import { modelTimestep } from '../../src/engine/step/step-runner.ts';
import { latentImageIds, textIds } from '../../src/engine/latents.ts';
import { readSafetensors } from '../../src/engine/weights/safetensors.ts';
import { rectsToMaskPng } from '../../src/rag/mask.ts';
import type { RagParams } from '../../src/rag/params.ts';
import { fixture } from '../support/fixtures.ts';
import type { WeightForms } from '../../src/engine/weights/forms.ts';
import { writeWeightsForm } from '../../src/engine/tiny-model/forms.ts';

/*
 * RAG-SPEC.md §10.7: behavioural invariants, exact in exact arithmetic. Where the two sides come out of the same
 * graph node by node they are compared bit for bit; where the same maths runs through different nodes (a row
 * pasted from another stream, the same row computed in a differently shaped MatMul) "kernel noise" is allowed:
 * 1e-5 absolute for other providers and thread counts (measured here on CPU: exactly 0 everywhere; values ≤ 6).
 */
const KERNEL = 1e-5;
const cpu = { executionProvider: 'cpu' as const, threads: 2 };
const cacheDir = mkdtempSync(path.join(tmpdir(), 'sw-inv-cache-'));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

/**
 * The invariants hold exactly on quantized weights too (issue 9): same checks, MatMulNBits linears, whether
 * quantized at load or read from GGUF files (the fixture's weights rewritten by make-tiny-model --weights gguf-q4_0).
 */
const ggufDir = path.join(cacheDir, 'gguf-q4_0');
const MODELS: { label: string; dir: () => string; weights?: Partial<WeightForms> }[] = [
  { label: 'bf16 as stored', dir: () => fixture('tiny-flux-dev') },
  {
    label: 'int4 transformer, int8 T5',
    dir: () => fixture('tiny-flux-dev'),
    weights: { transformer: 'int4', text_encoder_2: 'int8' },
  },
  {
    label: 'GGUF Q4_0 files',
    dir: () => {
      if (!existsSync(ggufDir)) {
        cpSync(fixture('tiny-flux-dev'), ggufDir, { recursive: true });
        writeWeightsForm(ggufDir, 'gguf-q4_0');
      }
      return ggufDir;
    },
  },
];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const rows = (x: Float32Array, index: BigInt64Array) => {
  const out = new Float32Array(index.length * 64);
  index.forEach((t, i) => out.set(x.subarray(Number(t) * 64, (Number(t) + 1) * 64), i * 64));
  return out;
};

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
  num_inference_steps: 4,
  guidance_scale: 3.5,
};

for (const model of MODELS)
  describe(`RAG invariants (RAG-SPEC §10.7) on tiny-flux-dev (${model.label}), 128², 4 steps`, () => {
    const engine = Engine.open({
      modelDir: model.dir(),
      runtime: cpu,
      weights: model.weights,
      weightsCacheDir: cacheDir,
    });
    afterAll(() => engine.close());

    it('1. during HB steps the box velocities are the regional ones (overlapping boxes: the later box wins), and the regional stream is plain FLUX', async () => {
      const plan = await engine.plan(base);
      // Boxes overlap on rows 2–5, columns 3–4.
      expect(plan.boxes.map((b) => b.rect)).toEqual([
        { r0: 0, r1: 8, c0: 0, c1: 5 },
        { r0: 2, r1: 6, c0: 3, c1: 8 },
      ]);
      const res = await engine.run(plan, { record: true });
      const rec = res.record!;
      const [b0, b1] = plan.boxes.map((b) => boxIndex(b.rect, 8)) as [BigInt64Array, BigInt64Array];
      const inB1 = new Set(Array.from(b1, Number));
      for (let i = 0; i < 2; i++) {
        expect(maxAbsDiff(rows(rec.velocity[i]!, b1), rec.boxVelocity[i]![1]!), `step ${i} box 1`).toBeLessThan(KERNEL);
        const only0 = b0.filter((t) => !inB1.has(Number(t)));
        const regional0 = new Float32Array(only0.length * 64);
        let n = 0;
        b0.forEach((t, j) => {
          if (!inB1.has(Number(t))) regional0.set(rec.boxVelocity[i]![0]!.subarray(j * 64, (j + 1) * 64), 64 * n++);
        });
        expect(maxAbsDiff(rows(rec.velocity[i]!, only0), regional0), `step ${i} box 0 outside box 1`).toBeLessThan(
          KERNEL,
        );
      }
      // After the HB steps the boxes are free: step 2 differs from the regional prediction.
      expect(rec.boxVelocity[2]).toEqual([]);
      // Hence at i = HB_replace the latent paste is a no-op up to float noise.
      expect(maxAbsDiff(rows(rec.main[2]!, b1), rows(res.trajectory[2]!, b1))).toBe(0);

      // The regional stream is a plain FLUX forward of the box on its own prompt and local ids, on the global schedule.
      const tr = await openTransformer(engine.checkpoint, cpu);
      const cond = engine.conditioning();
      const rect = plan.boxes[1]!.rect;
      const ref = await tr.run({
        hidden_states: rec.boxLatents[1]![1]!,
        encoder_hidden_states: await cond.t5('a glass of lemonade'),
        pooled_projections: await cond.clip('a glass of lemonade'),
        timestep: Float32Array.of(modelTimestep(res.schedule.timesteps[1]!)),
        guidance: Float32Array.of(3.5),
        img_ids: latentImageIds(rect.r1 - rect.r0, rect.c1 - rect.c0),
        txt_ids: textIds(512),
      });
      await tr.release();
      expect(maxAbsDiff(ref.sample!.data as Float32Array, rec.boxVelocity[1]![1]!)).toBeLessThan(KERNEL);
    });

    it('2. SR_delta = 0 gives exactly the output with soft refinement disabled (SR streams computed and blended with δ = 0)', async () => {
      const params = { ...base, SR_delta: 0 };
      const off = await engine.plan(params);
      expect(off.sr).toBeUndefined();
      const on = await engine.plan({ ...params, SR_delta: 0.5 });
      // Force the SR graph with δ = 0: the cell streams run, then contribute 0·C.
      const forced: RunPlan = { ...off, sr: { ...on.sr!, delta: 0 } };
      const a = await engine.run(off, { record: true });
      const b = await engine.run(forced, { record: true });
      for (let i = 0; i < 4; i++)
        expect(maxAbsDiff(a.record!.velocity[i]!, b.record!.velocity[i]!), `step ${i}`).toBe(0);
      expect(maxAbsDiff(a.latents, b.latents)).toBe(0);
      // And δ ≠ 0 does change the picture.
      const c = await engine.run(on, {});
      expect(maxAbsDiff(a.latents, c.latents)).toBeGreaterThan(1e-2);
    });

    it('3. HB_replace = −1 and SR_delta = 0 give plain FLUX (diffusers FluxPipeline golden, same prompt embedding and noise)', async () => {
      const golden = readSafetensors(fixture('golden', 'pipeline_dev.safetensors')).tensors;
      const g = (n: string) => golden[n]!.data as Float32Array;
      const params: RagParams = { ...base, HB_replace: -1, SR_delta: 0 };
      const plan = await engine.plan(params);
      const t5 = new Map([[base.prompt, g('prompt_embeds')]]);
      const clip = new Map([[base.prompt, g('pooled_prompt_embeds')]]);
      const noise = {
        global: () => g('latents_init_unpacked'),
        box: () => new Float32Array(0),
        repaint: () => new Float32Array(0),
      };
      const res = await engine.run(plan, { conditioning: new TableConditioning(512, t5, clip), noise });
      // Same tolerance and reasons as test/engine/pipeline.test.ts (the golden is of the bf16 weights).
      if (model.label === 'bf16 as stored') expect(maxAbsDiff(res.latents, g('final_latents'))).toBeLessThan(1e-4);
      const plain = await engine.run(
        plainPlan(base.prompt, { width: 128, height: 128, steps: 4, guidance: 3.5, seed: 0, textLength: 512 }),
        {
          conditioning: new TableConditioning(512, t5, clip),
          noise,
        },
      );
      expect(maxAbsDiff(res.latents, plain.latents)).toBe(0);
    });

    for (const single of [0, 1] as const) {
      it(`4. repaint (Repainting_single ${single}): outside the mask the repaint velocity is the original's and Z equals x at every step ≥ R; the original equals a run without repaint`, async () => {
        const mask = await rectsToMaskPng([{ x: 80, y: 48, w: 32, h: 32 }], 128, 128);
        const params: RagParams = {
          ...base,
          Repainting_mask: mask,
          Repainting_prompt: 'a red apple and a blue cup on a wooden table',
          Repainting_SR_prompt: 'a shiny red apple on the left BREAK a blue ceramic cup on the right',
          Repainting_HB_prompt: 'a blue cup',
          Repainting_HB_replace: 1,
          Repainting_seed: 100,
          Repainting_single: single,
        };
        const plan = await engine.plan(params);
        const inside = plan.repaint!.mask.tokens;
        const outside = BigInt64Array.from(
          Array.from(inside.keys()).filter((t) => !inside[t]),
          BigInt,
        );
        const insideIdx = BigInt64Array.from(
          Array.from(inside.keys()).filter((t) => inside[t]),
          BigInt,
        );
        expect(outside.length).toBeGreaterThan(40);
        expect(insideIdx.length).toBeGreaterThan(4);
        const res = await engine.run(plan, { record: true });
        const rec = res.record!;
        for (let i = 1; i < 4; i++) {
          expect(
            maxAbsDiff(rows(rec.repaintVelocity[i]!, outside), rows(rec.velocity[i]!, outside)),
            `velocity step ${i}`,
          ).toBeLessThan(KERNEL);
          expect(rows(rec.repaint[i]!, outside)).toEqual(rows(rec.main[i]!, outside));
          // Inside the mask the repaint pass paints something else.
          expect(
            maxAbsDiff(rows(rec.repaintVelocity[i]!, insideIdx), rows(rec.velocity[i]!, insideIdx)),
          ).toBeGreaterThan(1e-2);
        }
        expect(rows(res.repaintLatents!, outside)).toEqual(rows(res.latents, outside));
        const alone = await engine.run(await engine.plan(base), {});
        expect(maxAbsDiff(res.latents, alone.latents)).toBeLessThan(KERNEL);
      });
    }

    it('5. regional passes use local ids from 0 and the global sigma schedule (mu from the global token count)', async () => {
      const plan = await engine.plan(base);
      const res = await engine.run(plan, { record: true, noise: seededNoise(11) });
      // mu for 64 global tokens, not for the 40- or 20-token boxes.
      expect(res.schedule.mu).toBeCloseTo(64 * (0.65 / 3840) + (0.5 - (0.65 / 3840) * 256), 12);
      expect(res.record!.boxLatents[0]!.map((l) => l.length / 64)).toEqual([40, 20]);
    });
  });
