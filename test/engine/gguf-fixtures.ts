import { ggmlTypeByName, type QuantizedFormat } from '../../src/engine/weights/gguf/blocks.ts';

/** Shared inputs of the GGUF tests (gguf-*.test.ts). */

/** Deterministic bytes. */
export function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s >>> 24;
  };
}
export function randFloats(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => Math.fround(((r() * 256 + r()) / 65536 - 0.5) * 2 * scale));
}

/** Where each format keeps its fp16 d (and dmin / m) inside a block. */
export const SCALE_AT: Record<QuantizedFormat, number[]> = {
  Q4_0: [0],
  Q4_1: [0, 2],
  Q5_0: [0],
  Q5_1: [0, 2],
  Q8_0: [0],
  Q2_K: [80, 82],
  Q3_K: [108],
  Q4_K: [0, 2],
  Q5_K: [0, 2],
  Q6_K: [208],
  Q8_K: [],
};

/** fp16 scale edge cases: 1, max (65504), negative zero, smallest subnormal, zero, −0.5, a fraction. */
export const EDGE_F16 = [0x3c00, 0x7bff, 0x8000, 0x0001, 0x0000, 0xb800, 0x2e66, 0x03ff];

export function blocksOf(format: QuantizedFormat, seed: number): { bytes: Uint8Array; nb: number } {
  const t = ggmlTypeByName(format)!;
  const nb = EDGE_F16.length;
  const bytes = new Uint8Array(nb * t.bytesPerBlock);
  const r = rng(seed);
  for (let i = 0; i < bytes.length; i++) bytes[i] = r();
  for (let k = 0; k < nb; k++) {
    SCALE_AT[format].forEach((at, n) => {
      const v = EDGE_F16[(k + n * 3) % EDGE_F16.length]!;
      bytes[k * t.bytesPerBlock + at] = v & 0xff;
      bytes[k * t.bytesPerBlock + at + 1] = v >> 8;
    });
    if (format === 'Q8_K')
      new DataView(bytes.buffer).setFloat32(k * 292, [1, 3.4e38, -0, 1e-45, 0, -0.5, 0.0123, 1.17e-38][k]!, true);
  }
  if (format !== 'Q8_K') {
    // the first block: every code byte 0x00, the second: every code byte 0xff (extreme codes), scales kept
    for (const [k, v] of [
      [0, 0x00],
      [1, 0xff],
    ] as const) {
      for (let i = 0; i < t.bytesPerBlock; i++)
        if (!SCALE_AT[format].some((at) => i === at || i === at + 1)) bytes[k * t.bytesPerBlock + i] = v;
    }
  }
  return { bytes, nb };
}
