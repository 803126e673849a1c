/**
 * The GPU check of issue 3, run once on a lent GPU machine (bench/gpu-run.sh bundles it): the FLUX
 * transformer graph on each execution provider that loads there, at the `bench` preset (512²) and at
 * FLUX.1-schnell's full width (inner 3072, 24 heads, T5 width 4096) with 1 double + 2 single blocks at
 * 1024² (4096 image + 256 text tokens), random weights. The full 19 + 38 block step is projected from the
 * per-block time (double and single blocks cost the same 24·D² per token plus attention).
 *
 *   node gpu-bench.mjs <out-dir> <provider>...      e.g. cpu webgpu cuda
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { fluxConfigFromDiffusers, fluxTransformerShapes } from '../src/engine/checkpoint/flux-config.ts';
import { openTransformer } from '../src/engine/graphs/flux-transformer-session.ts';
import type { FloatType } from '../src/engine/onnx/graph.ts';
import { GaussianNoise } from '../src/engine/noise.ts';
import type { ExecutionProvider } from '../src/engine/runtime/session.ts';
import { makeTinyModel } from '../src/engine/tiny-model/make.ts';
import { float32ToBf16Array } from '../src/engine/weights/dtype.ts';
import { plainPassFlops } from '../src/engine/rag/cost.ts';

const [outDir = '/tmp/gpu-bench', ...providers] = process.argv.slice(2);
const say = (s: string) => process.stdout.write(`${s}\n`);

/** A transformer-only variant of a checkpoint: same folder layout, weights tiled from one random block. */
function writeWideTransformer(base: string, out: string): void {
  fs.cpSync(base, out, { recursive: true });
  const config = {
    _class_name: 'FluxTransformer2DModel', attention_head_dim: 128, axes_dims_rope: [16, 56, 56], guidance_embeds: false,
    in_channels: 64, joint_attention_dim: 4096, num_attention_heads: 24, num_layers: 1, num_single_layers: 2,
    patch_size: 1, pooled_projection_dim: 768,
  };
  fs.writeFileSync(path.join(out, 'transformer', 'config.json'), JSON.stringify(config));
  const spec = fluxTransformerShapes(fluxConfigFromDiffusers(config, 'config.json'));
  const names = [...spec.shapes.keys()].sort();
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const n of names) {
    const count = spec.shapes.get(n)!.reduce((a, b) => a * b, 1);
    header[n] = { dtype: 'BF16', shape: spec.shapes.get(n), data_offsets: [offset, offset + 2 * count] };
    offset += 2 * count;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const file = path.join(out, 'transformer', 'diffusion_pytorch_model.safetensors');
  const fd = fs.openSync(file, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  const block = new GaussianNoise(3).next([1 << 20]);
  for (const n of names) {
    const shape = spec.shapes.get(n)!;
    const count = shape.reduce((a, b) => a * b, 1);
    const scale = n.endsWith('.bias') ? 0.05 : shape.length === 1 ? 0 : 1 / Math.sqrt(shape[1]!);
    const add = shape.length === 1 && !n.endsWith('.bias') ? 1 : 0;
    for (let done = 0; done < count; done += block.length) {
      const k = Math.min(block.length, count - done);
      const v = new Float32Array(k);
      for (let i = 0; i < k; i++) v[i] = block[(i + done) % block.length]! * scale + add;
      const bits = float32ToBf16Array(v);
      fs.writeSync(fd, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
    }
  }
  fs.closeSync(fd);
}

fs.mkdirSync(outDir, { recursive: true });
const benchDir = path.join(outDir, 'bench-model');
if (!fs.existsSync(path.join(benchDir, 'model_index.json'))) {
  const t0 = Date.now();
  makeTinyModel({ out: benchDir, preset: 'bench', variant: 'schnell', seed: 7, force: true, tokenizers: process.env.TOKENIZERS });
  say(`bench checkpoint written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const wideDir = path.join(outDir, 'wide-model');
const skipWide = process.env.SKIP_WIDE === '1';
if (!skipWide && !fs.existsSync(path.join(wideDir, 'transformer', 'diffusion_pytorch_model.safetensors'))) {
  fs.rmSync(wideDir, { recursive: true, force: true });
  const t0 = Date.now();
  writeWideTransformer(benchDir, wideDir);
  say(`full-width transformer slice written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

interface Case { name: string; dir: string; side: number; textLen: number; fullBlocks?: number }
const cases: Case[] = [
  { name: 'bench preset 512²', dir: benchDir, side: 512, textLen: 256 },
  { name: 'schnell width 1024² (1+2 blocks)', dir: wideDir, side: 1024, textLen: 256, fullBlocks: 57 },
];

/** Graph forms to try per provider: GPU providers may lack the contrib ops (FusedMatMul, MultiHeadAttention). */
function graphVariants(ep: ExecutionProvider): [FloatType, 'fused' | 'transpose', 'mha' | 'explicit'][] {
  if (ep === 'cpu') return [['float32', 'fused', 'mha']];
  if (process.env.VARIANTS === 'all') {
    return [['float16', 'fused', 'mha'], ['float16', 'transpose', 'mha'], ['float16', 'transpose', 'explicit'], ['float32', 'transpose', 'explicit']];
  }
  return [['float32', 'fused', 'mha'], ['float16', 'fused', 'mha']];
}

const results: Record<string, unknown>[] = [];
for (const c of skipWide ? cases.slice(0, 1) : cases) {
  const ck = loadCheckpoint(c.dir);
  const cfg = ck.transformerConfig;
  const grid = c.side / 16;
  const N = grid * grid;
  const noise = new GaussianNoise(1);
  const inputs = {
    hidden_states: noise.next([N * 64]),
    encoder_hidden_states: noise.next([c.textLen * cfg.jointAttentionDim]),
    pooled_projections: noise.next([cfg.pooledProjectionDim]),
    timestep: Float32Array.of(0.75),
    img_ids: Float32Array.from({ length: N * 3 }, (_, i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? Math.floor(i / 3 / grid) : (i / 3) % grid)),
    txt_ids: new Float32Array(c.textLen * 3),
  };
  const flops = plainPassFlops(cfg, N, c.textLen);
  for (const ep of providers as ExecutionProvider[]) {
    // The CPU is only the baseline at bench size; the full-width slice takes minutes there.
    if (ep === 'cpu' && c.fullBlocks) continue;
    for (const [computeType, linear, attention] of graphVariants(ep)) {
      const row: Record<string, unknown> = { case: c.name, ep, computeType, linear, attention };
      try {
        const t = await openTransformer(
          ck,
          { executionProvider: ep, threads: 0, logSeverityLevel: process.env.ORT_LOG ? 1 : undefined },
          { computeType, linear, attention, ropePrecision: ep === 'webgpu' ? 'float32' : 'float64' },
        );
        row.createS = +(t.createMs / 1000).toFixed(2);
        let t0 = performance.now();
        const first = await t.run(inputs);
        row.firstRunS = +((performance.now() - t0) / 1000).toFixed(3);
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
          t0 = performance.now();
          await t.run(inputs);
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        const ms = times[2]!;
        const out = first.sample!.data as Float32Array;
        row.finite = out.every(Number.isFinite);
        row.meanAbs = +(out.reduce((a, b) => a + Math.abs(b), 0) / out.length).toFixed(4);
        row.stepS = +(ms / 1000).toFixed(4);
        row.tflops = +(flops / (ms / 1000) / 1e12).toFixed(2);
        if (c.fullBlocks) row.projectedFullStepS = +((ms / 1000) * (c.fullBlocks / (cfg.numLayers + cfg.numSingleLayers))).toFixed(3);
        await t.release();
      } catch (e) {
        row.error = String((e as Error).message).split('\n').slice(0, 3).join(' | ').slice(0, 400);
      }
      results.push(row);
      say(JSON.stringify(row));
    }
  }
}
fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2));
