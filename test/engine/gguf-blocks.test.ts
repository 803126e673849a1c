import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits } from '../../src/engine/weights/dtype.ts';
import {
  decodeRows,
  ggmlTypeByName,
  QUANTIZED_FORMATS,
  type QuantizedFormat,
} from '../../src/engine/weights/gguf/blocks.ts';
import { toNBits } from '../../src/engine/weights/gguf/to-nbits.ts';
import { encodeRows } from '../../src/engine/weights/gguf/writer.ts';
import { blocksOf, randFloats } from './gguf-fixtures.ts';

/**
 * GGUF block decoding against ggml's published definitions (ggml-common.h layouts, ggml-quants.c
 * dequantize_row_*). The references below follow ggml's C loops statement by statement (float32 after every
 * operation), deliberately not the engine's per-value indexing, and are compared bit for bit.
 */

const fr = Math.fround;
const h = (bits: number) => f16BitsToF32(bits);
const u16 = (b: Uint8Array, i: number) => b[i]! | (b[i + 1]! << 8);
const i8 = (v: number) => (v << 24) >> 24;

// ---------------------------------------------------------------------------------------- references

function getScaleMinK4(j: number, q: Uint8Array, s: number): [number, number] {
  if (j < 4) return [q[s + j]! & 63, q[s + j + 4]! & 63];
  return [(q[s + j + 4]! & 0xf) | ((q[s + j - 4]! >> 6) << 4), (q[s + j + 4]! >> 4) | ((q[s + j - 0]! >> 6) << 4)];
}

/** dequantize_row_q4_0 (y = (q − 8)·d) and, affine, dequantize_row_q4_1 (y = q·d + m). */
function refQ4(x: Uint8Array, nb: number, affine: boolean): number[] {
  const y: number[] = [];
  const bb = affine ? 20 : 18;
  for (let i = 0; i < nb; i++) {
    const o = i * bb;
    const d = h(u16(x, o));
    const m = affine ? h(u16(x, o + 2)) : 0;
    const qs = o + (affine ? 4 : 2);
    for (let j = 0; j < 16; j++) {
      const x0 = x[qs + j]! & 0x0f;
      const x1 = x[qs + j]! >> 4;
      y[i * 32 + j] = affine ? fr(fr(x0 * d) + m) : fr((x0 - 8) * d);
      y[i * 32 + j + 16] = affine ? fr(fr(x1 * d) + m) : fr((x1 - 8) * d);
    }
  }
  return y;
}

/** dequantize_row_q5_0 (y = (q − 16)·d) and, affine, dequantize_row_q5_1 (y = q·d + m); qh is a LE u32. */
function refQ5(x: Uint8Array, nb: number, affine: boolean): number[] {
  const y: number[] = [];
  const bb = affine ? 24 : 22;
  for (let i = 0; i < nb; i++) {
    const o = i * bb;
    const d = h(u16(x, o));
    const m = affine ? h(u16(x, o + 2)) : 0;
    const at = o + (affine ? 4 : 2);
    const qh = (x[at]! | (x[at + 1]! << 8) | (x[at + 2]! << 16) | (x[at + 3]! << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const xh0 = ((qh >>> j) << 4) & 0x10;
      const xh1 = (qh >>> (j + 12)) & 0x10;
      const x0 = (x[at + 4 + j]! & 0x0f) | xh0;
      const x1 = (x[at + 4 + j]! >> 4) | xh1;
      y[i * 32 + j] = affine ? fr(fr(x0 * d) + m) : fr((x0 - 16) * d);
      y[i * 32 + j + 16] = affine ? fr(fr(x1 * d) + m) : fr((x1 - 16) * d);
    }
  }
  return y;
}

/** dequantize_row_q4_K and (five: the qh high bits) dequantize_row_q5_K. */
function refK45(x: Uint8Array, nb: number, five: boolean): number[] {
  const y: number[] = [];
  for (let i = 0; i < nb; i++) {
    const o = i * (five ? 176 : 144);
    const d = h(u16(x, o));
    const min = h(u16(x, o + 2));
    let ql = o + (five ? 48 : 16);
    const qh = o + 16;
    let is = 0;
    let u1 = 1;
    let u2 = 2;
    for (let j = 0; j < 256; j += 64) {
      let [sc, m] = getScaleMinK4(is + 0, x, o + 4);
      const d1 = fr(d * sc);
      const m1 = fr(min * m);
      [sc, m] = getScaleMinK4(is + 1, x, o + 4);
      const d2 = fr(d * sc);
      const m2 = fr(min * m);
      for (let l = 0; l < 32; ++l) y.push(fr(fr(d1 * ((x[ql + l]! & 0xf) + (five && x[qh + l]! & u1 ? 16 : 0))) - m1));
      for (let l = 0; l < 32; ++l) y.push(fr(fr(d2 * ((x[ql + l]! >> 4) + (five && x[qh + l]! & u2 ? 16 : 0))) - m2));
      ql += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
  return y;
}

const REF: Record<QuantizedFormat, (x: Uint8Array, nb: number) => number[]> = {
  Q4_0: (x, nb) => refQ4(x, nb, false),
  Q4_1: (x, nb) => refQ4(x, nb, true),
  Q5_0: (x, nb) => refQ5(x, nb, false),
  Q5_1: (x, nb) => refQ5(x, nb, true),
  Q8_0(x, nb) {
    const y: number[] = [];
    for (let i = 0; i < nb; i++) {
      const d = h(u16(x, i * 34));
      for (let j = 0; j < 32; j++) y[i * 32 + j] = fr(i8(x[i * 34 + 2 + j]!) * d);
    }
    return y;
  },
  Q2_K(x, nb) {
    const y: number[] = [];
    for (let i = 0; i < nb; i++) {
      const o = i * 84;
      const d = h(u16(x, o + 80));
      const min = h(u16(x, o + 82));
      let q = o + 16;
      let is = 0;
      for (let n = 0; n < 256; n += 128) {
        let shift = 0;
        for (let j = 0; j < 4; ++j) {
          let sc = x[o + is++]!;
          let dl = fr(d * (sc & 0xf));
          let ml = fr(min * (sc >> 4));
          for (let l = 0; l < 16; ++l) y.push(fr(fr(dl * ((x[q + l]! >> shift) & 3)) - ml));
          sc = x[o + is++]!;
          dl = fr(d * (sc & 0xf));
          ml = fr(min * (sc >> 4));
          for (let l = 0; l < 16; ++l) y.push(fr(fr(dl * ((x[q + l + 16]! >> shift) & 3)) - ml));
          shift += 2;
        }
        q += 32;
      }
    }
    return y;
  },
  Q3_K(x, nb) {
    // ggml's aux[] shuffle of the 12 scale bytes, then the same loop as dequantize_row_q3_K.
    const kmask1 = 0x03030303;
    const kmask2 = 0x0f0f0f0f;
    const y: number[] = [];
    for (let i = 0; i < nb; i++) {
      const o = i * 110;
      const dAll = h(u16(x, o + 108));
      const dv = new DataView(x.buffer, x.byteOffset + o + 96, 12);
      const aux = [dv.getUint32(0, true), dv.getUint32(4, true), dv.getUint32(8, true), 0];
      const tmp = aux[2]!;
      aux[2] = (((aux[0]! >>> 4) & kmask2) | (((tmp >>> 4) & kmask1) << 4)) >>> 0;
      aux[3] = (((aux[1]! >>> 4) & kmask2) | (((tmp >>> 6) & kmask1) << 4)) >>> 0;
      aux[0] = ((aux[0]! & kmask2) | (((tmp >>> 0) & kmask1) << 4)) >>> 0;
      aux[1] = ((aux[1]! & kmask2) | (((tmp >>> 2) & kmask1) << 4)) >>> 0;
      const scales = new Int8Array(new Uint32Array(aux).buffer);
      let q = o + 32;
      const hm = o;
      let m = 1;
      let is = 0;
      for (let n = 0; n < 256; n += 128) {
        let shift = 0;
        for (let j = 0; j < 4; ++j) {
          let dl = fr(dAll * (scales[is++]! - 32));
          for (let l = 0; l < 16; ++l) y.push(fr(dl * (((x[q + l]! >> shift) & 3) - (x[hm + l]! & m ? 0 : 4))));
          dl = fr(dAll * (scales[is++]! - 32));
          for (let l = 0; l < 16; ++l)
            y.push(fr(dl * (((x[q + l + 16]! >> shift) & 3) - (x[hm + l + 16]! & m ? 0 : 4))));
          shift += 2;
          m <<= 1;
        }
        q += 32;
      }
    }
    return y;
  },
  Q4_K: (x, nb) => refK45(x, nb, false),
  Q5_K: (x, nb) => refK45(x, nb, true),
  Q6_K(x, nb) {
    const y: number[] = [];
    for (let i = 0; i < nb; i++) {
      const o = i * 210;
      const d = h(u16(x, o + 208));
      let ql = o;
      let qh = o + 128;
      let sc = o + 192;
      const base = i * 256;
      for (let n = 0; n < 256; n += 128) {
        for (let l = 0; l < 32; ++l) {
          const is = Math.floor(l / 16);
          const q1 = i8((x[ql + l]! & 0xf) | (((x[qh + l]! >> 0) & 3) << 4)) - 32;
          const q2 = i8((x[ql + l + 32]! & 0xf) | (((x[qh + l]! >> 2) & 3) << 4)) - 32;
          const q3 = i8((x[ql + l]! >> 4) | (((x[qh + l]! >> 4) & 3) << 4)) - 32;
          const q4 = i8((x[ql + l + 32]! >> 4) | (((x[qh + l]! >> 6) & 3) << 4)) - 32;
          y[base + n + l] = fr(fr(d * i8(x[sc + is]!)) * q1);
          y[base + n + l + 32] = fr(fr(d * i8(x[sc + is + 2]!)) * q2);
          y[base + n + l + 64] = fr(fr(d * i8(x[sc + is + 4]!)) * q3);
          y[base + n + l + 96] = fr(fr(d * i8(x[sc + is + 6]!)) * q4);
        }
        ql += 64;
        qh += 32;
        sc += 8;
      }
    }
    return y;
  },
  Q8_K(x, nb) {
    const y: number[] = [];
    for (let i = 0; i < nb; i++) {
      const d = new DataView(x.buffer, x.byteOffset + i * 292, 4).getFloat32(0, true);
      for (let j = 0; j < 256; j++) y.push(fr(d * i8(x[i * 292 + 4 + j]!)));
    }
    return y;
  },
};

const bitsOf = (a: ArrayLike<number>) => new Uint32Array(Float32Array.from(a).buffer);

describe('GGUF block decoding (ggml dequantize_row_*)', () => {
  it.each(QUANTIZED_FORMATS)(
    "%s matches ggml's loops bit for bit on blocks with edge scales and extreme codes",
    (format) => {
      const { bytes, nb } = blocksOf(format, format.length * 7919 + format.charCodeAt(1));
      const be = ggmlTypeByName(format)!.blockElems;
      const got = decodeRows(format, bytes, nb, be);
      expect(bitsOf(got)).toEqual(bitsOf(REF[format](bytes, nb)));
    },
  );

  it.each(QUANTIZED_FORMATS)("%s: an all-zero block decodes to zeros (signed as ggml's products)", (format) => {
    const t = ggmlTypeByName(format)!;
    const zero = new Uint8Array(2 * t.bytesPerBlock);
    const got = decodeRows(format, zero, 2, t.blockElems);
    expect(got.every((v) => v === 0)).toBe(true);
    expect(bitsOf(got)).toEqual(bitsOf(REF[format](zero, 2)));
  });

  it("decodes hand-made Q8_0 / Q4_0 / Q4_1 blocks to the formula's values", () => {
    // Q8_0: d = 65504 (fp16 max), codes −128..127 step 8 ⇒ y = q·65504 exactly.
    const q8 = new Uint8Array(34);
    q8[0] = 0xff;
    q8[1] = 0x7b;
    for (let j = 0; j < 32; j++) q8[2 + j] = (-128 + 8 * j) & 0xff;
    expect(Array.from(decodeRows('Q8_0', q8, 1, 32))).toEqual(
      Array.from({ length: 32 }, (_, j) => (-128 + 8 * j) * 65504),
    );
    // all-zero Q8_0 block: zeros
    expect(Array.from(decodeRows('Q8_0', new Uint8Array(34), 1, 32))).toEqual(new Array(32).fill(0));
    // Q4_0: d = 1; byte j = j | (15 − j) << 4 ⇒ y[j] = j − 8, y[j + 16] = 7 − j
    const q4 = new Uint8Array(18);
    q4[1] = 0x3c;
    for (let j = 0; j < 16; j++) q4[2 + j] = j | ((15 - j) << 4);
    expect(Array.from(decodeRows('Q4_0', q4, 1, 32))).toEqual([
      ...Array.from({ length: 16 }, (_, j) => j - 8),
      ...Array.from({ length: 16 }, (_, j) => 7 - j),
    ]);
    // negative zero d: y = q·(−0) — −0 for positive codes, +0 for negative ones (sign kept, as ggml's float product)
    q4[0] = 0x00;
    q4[1] = 0x80;
    const z = decodeRows('Q4_0', q4, 1, 32);
    expect(Object.is(z[0], 0)).toBe(true); // code −8
    expect(Object.is(z[15], -0)).toBe(true); // code 7
    // subnormal d = 2^-24: y = (q − 8)·2^-24
    q4[0] = 0x01;
    q4[1] = 0x00;
    expect(decodeRows('Q4_0', q4, 1, 32)[0]).toBe(-8 * 2 ** -24);
    // Q4_1: d = 0.5, m = −2: y = q·0.5 − 2
    const q41 = new Uint8Array(20);
    q41[1] = 0x38;
    q41[3] = 0xc0;
    for (let j = 0; j < 16; j++) q41[4 + j] = j | (j << 4);
    expect(Array.from(decodeRows('Q4_1', q41, 1, 32).subarray(0, 16))).toEqual(
      Array.from({ length: 16 }, (_, j) => j * 0.5 - 2),
    );
  });

  it('decodes hand-made K-quant blocks: Q6_K extreme codes and int8 scales, Q4_K 6-bit scales of 63', () => {
    // Q6_K: every raw code 63 (q = 31) in the first 128 values and 0 (q = −32) after; scales ±127 / −128; d = 1
    const b = new Uint8Array(210);
    b.fill(0xff, 0, 64);
    b.fill(0xff, 128, 160);
    for (let j = 0; j < 16; j++) b[192 + j] = (j % 2 ? -128 : 127) & 0xff;
    b[208] = 0x00;
    b[209] = 0x3c;
    const y = decodeRows('Q6_K', b, 1, 256);
    for (let e = 0; e < 256; e++)
      expect(y[e]).toBe((e >> 4) % 2 ? -128 * (e < 128 ? 31 : -32) : 127 * (e < 128 ? 31 : -32));
    // Q4_K: all six-bit scales and mins 63 (bytes 0xff), d = 1, dmin = 0.5, codes 0x0f/0xf0 alternate by byte
    const k = new Uint8Array(144);
    k[1] = 0x3c;
    k[3] = 0x38;
    k.fill(0xff, 4, 16);
    for (let i = 0; i < 128; i++) k[16 + i] = i % 2 ? 0xf0 : 0x0f;
    const y4 = decodeRows('Q4_K', k, 1, 256);
    // sub-block s uses low nibbles (even s) or high nibbles (odd s) of bytes 32·⌊s/2⌋ + l
    for (let e = 0; e < 256; e++) {
      const l = e & 31;
      const code = (e >> 5) % 2 ? (l % 2 ? 15 : 0) : l % 2 ? 0 : 15;
      expect(y4[e]).toBe(63 * code - 31.5);
    }
  });

  it('decodes the float types', () => {
    const v = Float32Array.from([1, -2.5, 65504, 1e-8]);
    expect(Array.from(decodeRows('F32', encodeRows('F32', v, 1, 4), 1, 4))).toEqual(Array.from(v));
    expect(Array.from(decodeRows('F16', encodeRows('F16', v, 2, 2), 2, 2))).toEqual([
      1,
      -2.5,
      65504,
      h(f32ToF16Bits(1e-8)),
    ]);
    expect(Array.from(decodeRows('BF16', encodeRows('BF16', Float32Array.from([1, -2.5, 3]), 1, 3), 1, 3))).toEqual([
      1, -2.5, 3,
    ]);
  });
});

describe("GGUF block encoding (the writer) round-trips within the format's error", () => {
  const rows = 4;
  const cols = 512;
  const x = randFloats(rows * cols, 11, 2);
  // a block with a large outlier and an all-zero block, so scales span a wide range
  x[40] = 37.5;
  x.fill(0, 256, 288);
  x.fill(0, 1024, 1280);

  it.each(['Q8_0', 'Q4_0', 'Q5_0'] as const)(
    '%s (ggml reference rule): |x − x̂| ≤ |d|/2 (|d| where the top code clips) + the fp16 rounding of d',
    (format) => {
      const levels = { Q8_0: 127, Q4_0: 8, Q5_0: 16 }[format];
      const bytes = encodeRows(format, x, rows, cols);
      const y = decodeRows(format, bytes, rows, cols);
      const bb = ggmlTypeByName(format)!.bytesPerBlock;
      for (let k = 0; k < (rows * cols) / 32; k++) {
        const blk = x.subarray(k * 32, k * 32 + 32);
        const amax = Math.max(...Array.from(blk, Math.abs));
        const d = amax / levels; // the unrounded scale the reference rule computes
        const d16 = Math.abs(h(u16(bytes, k * bb)));
        for (let j = 0; j < 32; j++) {
          const e = Math.abs(blk[j]! - y[k * 32 + j]!);
          // Q4_0/Q5_0 map the value of largest magnitude to −levels: its opposite extreme (+levels) clips to levels − 1.
          const clipped =
            format !== 'Q8_0' &&
            Math.abs(blk[j]! / d) > levels - 0.5 &&
            Math.sign(blk[j]!) !== Math.sign(blk.find((v) => Math.abs(v) === amax)!);
          expect(e).toBeLessThanOrEqual((clipped ? d : d / 2) + levels * Math.abs(d - d16) + 2 ** -20 * amax);
        }
      }
    },
  );

  it.each(['Q4_1', 'Q5_1'] as const)(
    '%s (ggml reference rule): |x − x̂| ≤ d/2 + the fp16 rounding of d and min',
    (format) => {
      const levels = format === 'Q4_1' ? 15 : 31;
      const bytes = encodeRows(format, x, rows, cols);
      const y = decodeRows(format, bytes, rows, cols);
      const bb = ggmlTypeByName(format)!.bytesPerBlock;
      for (let k = 0; k < (rows * cols) / 32; k++) {
        const blk = Array.from(x.subarray(k * 32, k * 32 + 32));
        const [min, max] = [Math.min(...blk), Math.max(...blk)];
        const d = (max - min) / levels;
        const d16 = h(u16(bytes, k * bb));
        const m16 = h(u16(bytes, k * bb + 2));
        for (let j = 0; j < 32; j++) {
          expect(Math.abs(blk[j]! - y[k * 32 + j]!)).toBeLessThanOrEqual(
            d / 2 + levels * Math.abs(d - d16) + Math.abs(min - m16) + 2 ** -20 * (Math.abs(min) + Math.abs(max)),
          );
        }
      }
    },
  );

  it("Q8_0 bytes equal ggml's quantize_row_q8_0_ref for a hand-computed block (roundf: halves away from zero)", () => {
    // amax 127 ⇒ d = 1, id = 1: codes are roundf(x)
    const v = Float32Array.from({ length: 32 }, (_, j) => [127, -2.5, 2.5, -0.5, 0.5, 1.49][j % 6]!);
    const b = encodeRows('Q8_0', v, 1, 32);
    expect(u16(b, 0)).toBe(0x3c00);
    expect(Array.from(b.subarray(2, 8), i8)).toEqual([127, -3, 3, -1, 1, 1]);
  });

  it.each(['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K'] as const)(
    '%s (own encoder): |x − x̂| ≤ scale/2 of each sub-block',
    (format) => {
      const bytes = encodeRows(format, x, rows, cols);
      const y = decodeRows(format, bytes, rows, cols);
      const q = toNBits(format, bytes, rows, cols); // per-sub-block float32 scales, as decoded
      for (let i = 0; i < x.length; i++) {
        const s = Math.abs(q.scales[Math.floor(i / q.block)]!);
        expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(s / 2 + 2 ** -20 * 40);
      }
    },
  );
});
