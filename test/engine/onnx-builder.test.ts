import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  attention,
  decodeModel,
  DEFAULT_OPSET,
  geluTanh,
  Graph,
  IR_VERSION,
  layerNorm,
  linear,
  rmsNorm,
  ropeInterleaved,
  silu,
  type DType,
  type TensorSource,
} from '../../src/engine/onnx/index.ts';
import { createSession, ort } from '../../src/engine/runtime/session.ts';
import { float32ToBf16Array, bf16ToFloat32Array } from '../../src/engine/weights/dtype.ts';

const cpu = { executionProvider: 'cpu' as const, threads: 1 };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-onnx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Deterministic pseudo-random values in [-1, 1). */
function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function inline(data: Float32Array | Uint16Array, shape: number[], dtype: DType): TensorSource {
  return { dtype, shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

async function run(g: Graph, feeds: Record<string, ort.Tensor>): Promise<Record<string, Float32Array>> {
  const { session } = await createSession(g, cpu);
  const out = await session.run(feeds);
  await session.release();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('ONNX graph builder', () => {
  it('writes IR 10 / opset 23 models that decode to what was built', () => {
    const g = new Graph('tiny');
    const x = g.input('x', 'float32', ['N', 4]);
    g.output(silu(x), 'y', 'float32', ['N', 4]);
    const m = decodeModel(g.toBytes());
    expect(m.ir_version).toBe(IR_VERSION);
    expect(m.opset_import).toEqual([{ domain: '', version: DEFAULT_OPSET }]);
    expect(m.graph.input[0]!.type.tensor_type.shape!.dim).toEqual([{ dim_param: 'N' }, { dim_value: 4 }]);
    expect(m.graph.node.map((n) => n.op_type)).toEqual(['Sigmoid', 'Mul', 'Identity']);
    expect(m.graph.output[0]!.name).toBe('y');
  });

  it.each(['fused', 'transpose'] as const)(
    'casts bf16 weights inside the graph and matches a JS linear + SiLU (%s)',
    async (impl) => {
      const [N, I, O] = [3, 8, 5];
      const xs = rand(N * I, 1);
      const wBits = float32ToBf16Array(rand(O * I, 2));
      const w = bf16ToFloat32Array(wBits);
      const b = rand(O, 3);
      const g = new Graph('linear', { linear: impl });
      const x = g.input('x', 'float32', [N, I]);
      const y = silu(
        linear(x, g.weight('w', inline(wBits, [O, I], 'bfloat16')), g.weight('b', inline(b, [O], 'float32'))),
      );
      g.output(y, 'y');
      const out = await run(g, { x: new ort.Tensor('float32', xs, [N, I]) });
      const ref = new Float32Array(N * O);
      for (let n = 0; n < N; n++)
        for (let o = 0; o < O; o++) {
          let acc = b[o]!;
          for (let i = 0; i < I; i++) acc += xs[n * I + i]! * w[o * I + i]!;
          ref[n * O + o] = acc / (1 + Math.exp(-acc));
        }
      expect(maxDiff(out.y!, ref)).toBeLessThan(1e-5);
    },
  );

  it('reads initializers from external data at arbitrary offsets in a file', async () => {
    const w = rand(12, 4);
    // 13 junk bytes first, so the offset is not even 4-byte aligned (as safetensors data can be).
    const file = path.join(tmp, 'weights.bin');
    writeFileSync(file, Buffer.concat([Buffer.alloc(13, 7), Buffer.from(w.buffer)]));
    const g = new Graph('ext');
    const x = g.input('x', 'float32', [1, 4]);
    const wv = g.weight('w', { dtype: 'float32', shape: [3, 4], external: { file, offset: 13, length: 48 } });
    g.output(linear(x, wv), 'y');
    expect(g.externalDataFolder()).toBe(tmp);
    const loc = decodeModel(g.toBytes()).graph.initializer.find((t) => t.name === 'w')!.external_data;
    expect(loc).toEqual([
      { key: 'location', value: 'weights.bin' },
      { key: 'offset', value: '13' },
      { key: 'length', value: '48' },
    ]);
    const out = await run(g, { x: new ort.Tensor('float32', Float32Array.from([1, 0, 0, 0]), [1, 4]) });
    expect(Array.from(out.y!)).toEqual([w[0], w[4], w[8]]);
  });

  it('LayerNorm, RMSNorm, GELU-tanh and RoPE match JS references', async () => {
    const D = 8;
    const xs = rand(2 * D, 5);
    const scale = rand(D, 6);
    const g = new Graph('norms');
    const x = g.input('x', 'float32', [2, D]);
    g.output(layerNorm(x, D, 1e-6), 'ln');
    g.output(rmsNorm(x, g.weight('s', inline(scale, [D], 'float32')), 1e-6), 'rms');
    g.output(geluTanh(x), 'gelu');
    // RoPE on [B=1, S=2, H=1, D]: cos/sin per position, broadcast over heads.
    const cosv = rand(2 * D, 7);
    const sinv = rand(2 * D, 8);
    const x4 = g.op('Reshape', [x, g.ints([1, 2, 1, D])]);
    const c = g.constant(cosv, [2, 1, D], 'float32');
    const s = g.constant(sinv, [2, 1, D], 'float32');
    g.output(ropeInterleaved(x4, c, s, D), 'rope');
    const out = await run(g, { x: new ort.Tensor('float32', xs, [2, D]) });
    const ln: number[] = [],
      rms: number[] = [],
      gelu: number[] = [],
      rope: number[] = [];
    for (let r = 0; r < 2; r++) {
      const row = Array.from(xs.subarray(r * D, r * D + D));
      const mean = row.reduce((a, b) => a + b, 0) / D;
      const v = row.reduce((a, b) => a + (b - mean) ** 2, 0) / D;
      const ms = row.reduce((a, b) => a + b * b, 0) / D;
      row.forEach((e, i) => {
        ln.push((e - mean) / Math.sqrt(v + 1e-6));
        rms.push((e / Math.sqrt(ms + 1e-6)) * scale[i]!);
        gelu.push(0.5 * e * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (e + 0.044715 * e ** 3))));
        const partner = i % 2 === 0 ? -row[i + 1]! : row[i - 1]!;
        rope.push(e * cosv[r * D + i]! + partner * sinv[r * D + i]!);
      });
    }
    expect(maxDiff(out.ln!, ln)).toBeLessThan(1e-5);
    expect(maxDiff(out.rms!, rms)).toBeLessThan(1e-5);
    expect(maxDiff(out.gelu!, gelu)).toBeLessThan(1e-6);
    expect(maxDiff(out.rope!, rope)).toBeLessThan(1e-6);
  });

  it('attention (fused MultiHeadAttention and explicit) matches softmax(QKᵀ/√d + bias)V', async () => {
    const [S, T, H, Dh] = [3, 4, 2, 4];
    const q = rand(S * H * Dh, 9),
      k = rand(T * H * Dh, 10),
      v = rand(T * H * Dh, 11);
    // Mask query 0 off key 3 in every head: the shape RAG's regional masks will have.
    const bias = new Float32Array(S * T);
    bias[3] = -Infinity;
    const ref = new Float32Array(S * H * Dh);
    for (let h = 0; h < H; h++)
      for (let i = 0; i < S; i++) {
        const sc = Array.from({ length: T }, (_, j) => {
          let d = 0;
          for (let e = 0; e < Dh; e++) d += q[i * H * Dh + h * Dh + e]! * k[j * H * Dh + h * Dh + e]!;
          return d / Math.sqrt(Dh) + bias[i * T + j]!;
        });
        const mx = Math.max(...sc);
        const ex = sc.map((z) => Math.exp(z - mx));
        const sum = ex.reduce((a, b) => a + b, 0);
        for (let e = 0; e < Dh; e++) {
          let acc = 0;
          for (let j = 0; j < T; j++) acc += (ex[j]! / sum) * v[j * H * Dh + h * Dh + e]!;
          ref[i * H * Dh + h * Dh + e] = acc;
        }
      }
    for (const impl of ['mha', 'explicit'] as const) {
      const g = new Graph(`attn-${impl}`);
      const qi = g.input('q', 'float32', [1, S, H * Dh]);
      const ki = g.input('k', 'float32', [1, T, H * Dh]);
      const vi = g.input('v', 'float32', [1, T, H * Dh]);
      const bi = g.input('bias', 'float32', [1, 1, S, T]);
      g.output(attention(qi, ki, vi, { heads: H, headDim: Dh, bias: bi, impl }), 'o');
      const out = await run(g, {
        q: new ort.Tensor('float32', q, [1, S, H * Dh]),
        k: new ort.Tensor('float32', k, [1, T, H * Dh]),
        v: new ort.Tensor('float32', v, [1, T, H * Dh]),
        bias: new ort.Tensor('float32', bias, [1, 1, S, T]),
      });
      expect(maxDiff(out.o!, ref), impl).toBeLessThan(1e-6);
    }
  });
});
