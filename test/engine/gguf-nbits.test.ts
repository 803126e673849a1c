import { describe, expect, it } from 'vitest';
import { Graph, linear, type TensorSource } from '../../src/engine/onnx/index.ts';
import { createSession, ort } from '../../src/engine/runtime/session.ts';
import {
  decodeRows,
  ggmlTypeByName,
  QUANTIZED_FORMATS,
  type QuantizedFormat,
} from '../../src/engine/weights/gguf/blocks.ts';
import { nbitsFormOf, toNBits } from '../../src/engine/weights/gguf/to-nbits.ts';
import { encodeRows } from '../../src/engine/weights/gguf/writer.ts';
import {
  blockBytes,
  blocksPerRow,
  dequantizeNBits,
  zeroBytesPerRow,
  type NBitsHost,
} from '../../src/engine/weights/nbits.ts';
import { blocksOf, randFloats } from './gguf-fixtures.ts';

/**
 * GGUF → MatMulNBits repacking. Bound: symmetric formats reproduce ggml's values bit for bit (scale·(q − zero)
 * is one float32 product of a float32 scale and a small integer, as ggml's d·q); affine ones differ from ggml's
 * fl(fl(d·q) − m) only by that inner rounding, so |Δ| ≤ 2^-22·(|scale·(q − zero)| + |min|).
 */

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function expectSameAsDecode(format: QuantizedFormat, bytes: Uint8Array, rows: number, cols: number): NBitsHost {
  const q = toNBits(format, bytes, rows, cols);
  const ref = decodeRows(format, bytes, rows, cols);
  const got = dequantizeNBits(q);
  if (!nbitsFormOf(format)!.affine) {
    expect(bits(got)).toEqual(bits(ref));
    return q;
  }
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const b = Math.floor(i / q.block);
    const code = q.bits === 8 ? q.packed[i]! : (q.packed[i >> 1]! >> ((i & 1) * 4)) & 15;
    const bound = 2 ** -22 * (Math.abs(q.scales[b]! * code) + Math.abs(q.mins![b]!));
    worst = Math.max(worst, Math.abs(got[i]! - ref[i]!) - bound);
  }
  expect(worst).toBeLessThanOrEqual(0);
  return q;
}

describe('GGUF → MatMulNBits repack (toNBits)', () => {
  it.each(QUANTIZED_FORMATS)('%s: dequantizeNBits(toNBits(b)) equals decodeRows(b) on edge-case blocks', (format) => {
    const { bytes, nb } = blocksOf(format, 4242 + format.charCodeAt(1) * 31);
    const be = ggmlTypeByName(format)!.blockElems;
    // as one row of all blocks, and as rows of one block
    expectSameAsDecode(format, bytes, 1, nb * be);
    expectSameAsDecode(format, bytes, nb, be);
  });

  it.each(QUANTIZED_FORMATS)(
    '%s: the same on encoded weights, with the documented layout (zeros only for affine formats)',
    (format) => {
      const rows = 6;
      const cols = 512;
      const q = expectSameAsDecode(format, encodeRows(format, randFloats(rows * cols, 3, 0.2), rows, cols), rows, cols);
      const form = nbitsFormOf(format)!;
      expect([q.bits, q.block]).toEqual([form.bits, form.block]);
      expect(q.packed.length).toBe(rows * blocksPerRow(q) * blockBytes(q));
      expect(q.scales.length).toBe(rows * blocksPerRow(q));
      if (form.affine) {
        expect(q.zeros!.length).toBe(rows * zeroBytesPerRow(q));
        expect(q.zeros!.every((z) => z === 0)).toBe(true);
        expect(q.mins!.length).toBe(rows * blocksPerRow(q));
      } else {
        expect(q.zeros).toBeUndefined();
        expect(q.mins).toBeUndefined();
      }
    },
  );

  it("reorders Q4_0 nibbles (ggml: j low, j+16 high in byte j) into MatMulNBits' even-low/odd-high pairs", () => {
    const b = new Uint8Array(18);
    b[1] = 0x3c;
    for (let j = 0; j < 16; j++) b[2 + j] = j | ((15 - j) << 4); // value j = j, value j + 16 = 15 − j
    const q = toNBits('Q4_0', b, 1, 32);
    expect(Array.from(q.packed)).toEqual(
      Array.from({ length: 16 }, (_, p) => {
        const v = (e: number) => (e < 16 ? e : 31 - e);
        return v(2 * p) | (v(2 * p + 1) << 4);
      }),
    );
    expect(Array.from(q.scales)).toEqual([1]);
  });

  it('maps rows that share a super-block (a ComfyUI-GGUF reshaped tensor): 64-value rows of Q4_K', () => {
    const bytes = encodeRows('Q4_K', randFloats(1024, 9), 4, 256);
    expectSameAsDecode('Q4_K', bytes, 16, 64);
  });
});

const cpu = { executionProvider: 'cpu' as const, threads: 1 };
const inline = (dtype: 'uint8' | 'float32', shape: number[], a: Uint8Array | Float32Array): TensorSource => ({
  dtype,
  shape,
  data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
});

describe('MatMulNBits in ONNX Runtime on repacked GGUF weights', () => {
  // N output rows, K inputs (two super-blocks per row), M activations rows
  const [M, N, K] = [3, 5, 512];
  const x = randFloats(M * K, 77, 1);

  it.each(QUANTIZED_FORMATS)(
    '%s: linear(x, W) = x·decodeRows(W)ᵀ within float32 accumulation (1e-6 of Σ|x·w|; measured ≤ 1.4e-7)',
    async (format) => {
      const w = randFloats(N * K, 100 + format.charCodeAt(1), 0.3);
      const bytes = encodeRows(format, w, N, K);
      const q = toNBits(format, bytes, N, K);
      const kb = blocksPerRow(q);
      const g = new Graph(`gguf-${format}`);
      const xv = g.input('x', 'float32', [M, K]);
      const wv = g.linearWeight('w', {
        dtype: 'float32',
        shape: [N, K],
        nbits: {
          bits: q.bits,
          block: q.block,
          packed: inline('uint8', [N, kb, blockBytes(q)], q.packed),
          scales: inline('float32', [N, kb], q.scales),
          zeros: q.zeros && inline('uint8', [N, zeroBytesPerRow(q)], q.zeros),
          mins: q.mins && inline('float32', [N, kb], q.mins),
        },
      });
      g.output(linear(xv, wv), 'y');
      const { session } = await createSession(g, cpu);
      const out = (await session.run({ x: new ort.Tensor('float32', x, [M, K]) })).y!.data as Float32Array;
      await session.release();
      const ref = decodeRows(format, bytes, N, K);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let acc = 0;
          let mag = 0;
          for (let k = 0; k < K; k++) {
            acc += x[m * K + k]! * ref[n * K + k]!;
            mag += Math.abs(x[m * K + k]! * ref[n * K + k]!);
          }
          expect(Math.abs(out[m * N + n]! - acc)).toBeLessThanOrEqual(1e-6 * mag + 1e-7);
        }
      }
    },
  );
});
