import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { runDebug } from '../../src/engine/debug/run.ts';
import {
  buildT5EncoderGraph,
  clampT5Half,
  relativePositionBuckets,
  t5ComputeType,
} from '../../src/engine/graphs/t5.ts';
import { cast, Graph, ONNX_DTYPE } from '../../src/engine/onnx/index.ts';
import { T5TextEncoder } from '../../src/engine/graphs/t5-encoder.ts';
import { createSession, ort } from '../../src/engine/runtime/session.ts';
import { readSafetensors, writeSafetensors } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

// Tolerance 1e-4 absolute (outputs up to ~3.7), wider than the ~1e-5 fixtures/README.md §5 suggests, for a
// measured reason: with 512 tokens and no attention mask, hundreds of identical pad keys and large position
// biases make the softmax ill-conditioned. A float64 evaluation of block 0 differs from the golden itself by
// 2.1e-5 and from ORT by 4.9e-5; ORT vs golden is 2.8e-5 at length 512 and 4.5e-6 at 256. The mean error is
// also checked (measured ≤ 1.7e-6, limit 5e-6), so a systematic error cannot hide under the max.
const TOL = 1e-4;
const MEAN_TOL = 5e-6;
const cpu = { executionProvider: 'cpu' as const, threads: 2 };
const golden = readSafetensors(fixture('golden', 't5_encoder.safetensors')).tensors;
const f32 = (name: string) => golden[name]!.data as Float32Array;

function diffs(a: Float32Array, b: Float32Array): { max: number; mean: number } {
  expect(a.length).toBe(b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

describe('T5 v1.1 encoder graph vs transformers T5EncoderModel (golden t5_encoder.safetensors)', () => {
  const checkpoint = loadCheckpoint(fixture('tiny-flux-dev'));
  const component = checkpoint.component('text_encoder_2');
  const encoder = new T5TextEncoder(component, cpu);
  afterAll(() => encoder.release());

  it('uses shared.weight: the tiny checkpoint has no encoder.embed_tokens.weight', () => {
    expect(component.weights.has('encoder.embed_tokens.weight')).toBe(false);
    expect(component.weights.has('shared.weight')).toBe(true);
  });

  it('length 512 (FLUX.1-dev): last_hidden_state of 3 prompts', async () => {
    const out = await encoder.encode(golden.input_ids!.data as BigInt64Array, 512);
    expect(out).toMatchObject({ batch: 3, length: 512, dModel: 32 });
    const d = diffs(out.lastHiddenState, f32('last_hidden_state'));
    expect(d.max).toBeLessThan(TOL);
    expect(d.mean).toBeLessThan(MEAN_TOL);
  });

  it('length 256 (FLUX.1-schnell): last_hidden_state of 3 prompts', async () => {
    const out = await encoder.encode(golden.input_ids_256!.data as BigInt64Array, 256);
    const d = diffs(out.lastHiddenState, f32('last_hidden_state_256'));
    expect(d.max).toBeLessThan(TOL);
    expect(d.mean).toBeLessThan(MEAN_TOL);
  });

  it('hidden states after the embedding, block 0 and the final norm match (explicit attention)', async () => {
    const { session } = await createSession(
      buildT5EncoderGraph(component, { length: 512, hiddenStates: true, attention: 'explicit' }),
      cpu,
    );
    const ids = golden.input_ids!;
    const out = await session.run({ input_ids: new ort.Tensor('int64', ids.data as BigInt64Array, ids.shape) });
    expect(diffs(out.hidden_states_0!.data as Float32Array, f32('hidden_states_0')).max).toBe(0);
    for (const k of ['hidden_states_1', 'hidden_states_2']) {
      const d = diffs(out[k]!.data as Float32Array, f32(k));
      expect(d.max, k).toBeLessThan(TOL);
      expect(d.mean, k).toBeLessThan(MEAN_TOL);
    }
    await session.release();
  });

  it('relative position buckets: bidirectional, exact below 8, log-spaced to 128, capped', () => {
    const L = 300;
    const b = relativePositionBuckets(L, 32, 128);
    const at = (i: number, j: number) => b[i * L + j];
    expect(at(0, 0)).toBe(0);
    expect(at(10, 3)).toBe(7); // key 7 before the query: exact bucket 7
    expect(at(3, 10)).toBe(16 + 7); // 7 after: the upper half
    expect(at(0, 8)).toBe(16 + 8);
    expect(at(0, 16)).toBe(16 + 10); // 8 + trunc(log(2)/log(16)·8) = 10
    expect(at(0, 127)).toBe(16 + 15);
    expect(at(0, 299)).toBe(31);
    expect(at(299, 0)).toBe(15);
  });

  it('compute type by provider: fp32 on CPU, bf16 on CUDA, fp16 on WebGPU; fp32 embeddings at the JS boundary', () => {
    expect(['cpu', 'cuda', 'webgpu'].map((ep) => t5ComputeType(ep as 'cpu'))).toEqual([
      'float32',
      'bfloat16',
      'float16',
    ]);
    // bf16 (CUDA): the checkpoint's bf16 weights are used as they are (no Cast), I/O stays int64 ids → fp32 states.
    const m = buildT5EncoderGraph(component, { length: 256, computeType: 'bfloat16' }).toModel().graph;
    expect(m.input.map((i) => i.type.tensor_type!.elem_type)).toEqual([ONNX_DTYPE.int64]);
    expect(m.output.map((o) => [o.name, o.type.tensor_type!.elem_type])).toEqual([
      ['last_hidden_state', ONNX_DTYPE.float32],
    ]);
    const weights = m.initializer.filter((t) => t.name.startsWith('encoder.') || t.name === 'shared.weight');
    expect(weights.length).toBeGreaterThan(10);
    expect(weights.every((t) => t.data_type === ONNX_DTYPE.bfloat16)).toBe(true);
    expect(m.node.filter((n) => n.op_type === 'Cast' && weights.some((w) => n.input.includes(w.name)))).toEqual([]);
    // fp32 (CPU) is the graph the goldens above check: every weight cast once, no clamp.
    const f = buildT5EncoderGraph(component, { length: 256 }).toModel().graph;
    expect(f.node.some((n) => n.op_type === 'Clip')).toBe(false);
  });

  it('float16 (WebGPU) as transformers runs T5 in it: wo and the residual stream in float32, float16 clamped; close to fp32', async () => {
    const g = new Graph('clamp', { computeType: 'float16' });
    g.output(cast(clampT5Half(cast(g.input('x', 'float32', [3]), 'float16')), 'float32'), 'y', 'float32', [3]);
    const { session: clamp } = await createSession(g, cpu);
    const y = async (v: number[]) =>
      Array.from(
        (await clamp.run({ x: new ort.Tensor('float32', Float32Array.from(v), [3]) })).y!.data as Float32Array,
      );
    // An inf (70000 overflows half) clamps everything to ±(65504 − 1000) (64512 in half); finite values pass.
    expect(await y([1, 70000, -3])).toEqual([1, 64512, -3]);
    expect(await y([1, -70000, 60000])).toEqual([1, -64512, 60000]);
    expect(await y([1, 60000, -65000])).toEqual([1, 60000, -64992]);
    await clamp.release();

    const graph = buildT5EncoderGraph(component, { length: 256, computeType: 'float16' });
    // `wo` in float32 makes the residual stream float32 from block 0's feed-forward on, as in transformers: only block
    // 0's attention output is still float16 and clamped.
    expect(
      graph
        .toModel()
        .graph.node.filter((n) => n.op_type === 'Clip')
        .map((n) => (n.name ?? '').split('/')[0]),
    ).toEqual(['block.0']);
    const { session } = await createSession(graph, cpu);
    const ids = golden.input_ids_256!;
    const out = await session.run({ input_ids: new ort.Tensor('int64', ids.data as BigInt64Array, ids.shape) });
    const d = diffs(out.last_hidden_state!.data as Float32Array, f32('last_hidden_state_256'));
    // Half precision (≈ 2^-11 relative per op; the output is float16 as in transformers) on outputs up to ~3.7:
    // measured max 6.5e-3, mean 4.0e-4.
    expect(d.max).toBeLessThan(1.5e-2);
    expect(d.mean).toBeLessThan(1e-3);
    await session.release();
  });

  it('debug t5 on the schnell checkpoint with 256-token ids', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-t5-'));
    try {
      const inputs = path.join(dir, 'in.safetensors');
      const out = path.join(dir, 'out.safetensors');
      writeSafetensors(inputs, { input_ids: golden.input_ids_256! });
      await runDebug('t5', { model: fixture('tiny-flux-schnell'), inputs, out }, cpu, () => {});
      const t = readSafetensors(out).tensors;
      expect(t.last_hidden_state!.shape).toEqual([3, 256, 32]);
      expect(diffs(t.last_hidden_state!.data as Float32Array, f32('last_hidden_state_256')).max).toBeLessThan(TOL);
      writeSafetensors(inputs, { input_ids: { dtype: 'int64', shape: [1, 100], data: new BigInt64Array(100) } });
      await expect(runDebug('t5', { model: fixture('tiny-flux-schnell'), inputs, out }, cpu, () => {})).rejects.toThrow(
        /expected \[B, 512 or 256\]/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
