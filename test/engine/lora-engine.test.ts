import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import type { RagParams } from '../../src/rag/params.ts';
import { fixture } from '../support/fixtures.ts';
import { loraShelf, maxAbsDiff, mergedCheckpoint, randomLora } from './lora-support.ts';

/*
 * LoRA in the step graph (docs/styles.md) on tiny-flux-dev with the real graph builder and ONNX Runtime: the
 * invariants of issue 18. Comparisons through the same nodes are bit for bit; a merged checkpoint computes
 * W'·x instead of W·x + B·(A·x), so it agrees within float32 rounding.
 */
const cpu = { executionProvider: 'cpu' as const, threads: 2 };
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
const everywhere = randomLora(layers, { rank: 4, seed: 1, alpha: 2 });
const attnOnly = randomLora(layers, { rank: 3, seed: 2, only: (n) => /attn\.(to_[qkv]|add_[qkv]_proj)$/.test(n) });
const shelf = loraShelf([everywhere, attnOnly]);
const [pEvery, pAttn] = shelf.paths as [string, string];
const merged = mergedCheckpoint(dev, [{ file: everywhere, scale: 0.8 }]);
afterAll(() => {
  rmSync(shelf.dir, { recursive: true, force: true });
  rmSync(merged, { recursive: true, force: true });
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
  });
});
