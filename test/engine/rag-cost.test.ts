import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import type { FluxTransformerConfig } from '../../src/engine/checkpoint/flux-config.ts';
import { benchStep } from '../../bench/rag-workload.ts';
import { plainPassFlops, stepFlops, upstreamStepFlops } from '../../src/engine/step/cost.ts';
import { PLAIN_SIGNATURE } from '../../src/engine/step/signature.ts';
import { fixture } from '../support/fixtures.ts';

const ck = loadCheckpoint(fixture('tiny-flux-dev'));
const cfg = ck.transformerConfig;

/** FLUX.1-dev's transformer config (RAG-SPEC §1.4). */
const DEV: FluxTransformerConfig = {
  ...cfg,
  numLayers: 19,
  numSingleLayers: 38,
  heads: 24,
  headDim: 128,
  inner: 3072,
  mlp: 12288,
  jointAttentionDim: 4096,
  pooledProjectionDim: 768,
  axesDimsRope: [16, 56, 56],
};

describe('step FLOP counts and the benchmark hook', () => {
  it('a plain pass counts every weight matrix of the checkpoint once per token it multiplies, plus attention', () => {
    const N = 64;
    const L = 512;
    const weights = ck.transformerWeights();
    let macs = 0;
    for (const name of weights.names()) {
      const shape = weights.info(name).shape;
      if (shape.length !== 2 || !name.endsWith('.weight')) continue;
      const size = shape[0]! * shape[1]!;
      let tokens: number;
      if (/^single_transformer_blocks\.\d+\.(attn\.to_[qkv]|proj_mlp|proj_out)\./.test(name)) tokens = N + L;
      else if (/^transformer_blocks\.\d+\.(attn\.(add_[qkv]_proj|to_add_out)|ff_context)\./.test(name)) tokens = L;
      else if (/^transformer_blocks\.\d+\.(attn\.(to_[qkv]|to_out)|ff)\./.test(name)) tokens = N;
      else if (/^(x_embedder|proj_out)\./.test(name)) tokens = N;
      else if (/^context_embedder\./.test(name)) tokens = L;
      else tokens = 1; // modulation and time/text embedders act on one vector
      macs += size * tokens;
    }
    const attention = (cfg.numLayers + cfg.numSingleLayers) * 2 * (N + L) ** 2 * cfg.inner;
    expect(plainPassFlops(cfg, N, L)).toBe(2 * (macs + attention));
  });

  it('FLUX.1-dev at 1024²: plain ≈ 74 TFLOP; SR ratios match RAG-SPEC §3.7 (ours 1.87× / 2.09×, upstream 2.68× / 4.37× for S = 2 / 4)', () => {
    const g = { tokens: 4096, textLength: 512 };
    const plain = stepFlops(DEV, PLAIN_SIGNATURE, g).total;
    // Each token meets ≈ 6.45 B weights (the double blocks' image and text weights are separate, modulation acts on
    // one vector): 2 · 6.45e9 · 4608 ≈ 59 TFLOP of linears, plus 57 blocks of attention over 4608 tokens ≈ 15 TFLOP.
    expect(plain / 1e12).toBeGreaterThan(70);
    expect(plain / 1e12).toBeLessThan(80);
    // δ = 0 has no SR streams: exactly plain.
    expect(stepFlops(DEV, { ...PLAIN_SIGNATURE, cells: 0 }, g).total).toBe(plain);
    for (const [S, spec, specUpstream] of [
      [2, 1.87, 2.68],
      [4, 2.09, 4.37],
    ] as const) {
      const sig = { ...PLAIN_SIGNATURE, cells: S };
      expect(Math.abs(stepFlops(DEV, sig, g).total / plain / spec - 1)).toBeLessThan(0.02);
      expect(Math.abs(upstreamStepFlops(DEV, sig, g) / plain / specUpstream - 1)).toBeLessThan(0.02);
    }
    // A repaint step is two passes; hard binding adds one pass per box on its own tokens.
    const rp = stepFlops(DEV, { ...PLAIN_SIGNATURE, repaint: true }, g);
    expect(rp.total).toBe(2 * plain);
    const hb = stepFlops(DEV, { ...PLAIN_SIGNATURE, boxes: 2 }, { ...g, boxTokens: [1275, 1428] });
    expect(hb.boxes).toBe(plainPassFlops(DEV, 1275, 512) + plainPassFlops(DEV, 1428, 512));
    expect(() => stepFlops(DEV, { ...PLAIN_SIGNATURE, boxes: 1 }, g)).toThrow(/boxTokens/);
  });

  it('benchStep builds, times and counts a signature on a checkpoint', async () => {
    const runtime = { executionProvider: 'cpu' as const, threads: 2 };
    const sig = { boxes: 2, cells: 2, repaint: true, repaintSingle: false, prepass: true };
    const r = await benchStep(ck, sig, { runtime, width: 128, height: 128, runs: 2, warmup: 1 });
    expect(r.signature).toBe('k2-s2-rp0-pp');
    expect(r.runsMs).toHaveLength(2);
    expect(r.stepMs).toBeGreaterThan(0);
    expect(r.createMs).toBeGreaterThan(0);
    expect(r.layout.boxes).toEqual([
      { r0: 1, r1: 6, c0: 0, c1: 4 },
      { r0: 1, r1: 6, c0: 4, c1: 8 },
    ]);
    expect(r.flops.total).toBe(
      stepFlops(cfg, sig, { tokens: 64, textLength: 512, boxTokens: [20, 20], prepassTokens: 16 }).total,
    );
    expect(r.upstreamFlops).toBeGreaterThan(r.flops.total);
  });
});
