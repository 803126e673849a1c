import { zeroBytesPerRow, type NBitsHost } from '../nbits.ts';
import {
  encodedBytes,
  f16At,
  forEachCode,
  ggmlTypeByName,
  isQuantized,
  scaleMinK4,
  type QuantizedFormat,
} from './blocks.ts';

/**
 * GGUF block formats repacked into com.microsoft.MatMulNBits' layout (see nbits.ts), exactly: every weight
 * scale·(q − zero) − min equals ggml's dequantized value up to float32 rounding of that formula (symmetric formats:
 * bit for bit). ggml's scales and mins are per block of 32 (per 16 for Q2_K/Q3_K/Q6_K), which become MatMulNBits
 * blocks of the same size; super-block scales (d·sc, dmin·m) are multiplied out in float32 as ggml does.
 *
 * ORT 1.29 CPU runs MatMulNBits with bits 4 and 8 and default or uint8 zero points, so 5- and 6-bit codes go to
 * 8 bits, and affine formats use zero point 0 with a per-block `mins` the graph subtracts.
 */

interface Form {
  bits: 4 | 8;
  block: number;
  affine: boolean;
  /** added to ggml's code to get the stored one */ shift: number;
}

const FORMS: Record<QuantizedFormat, Form> = {
  Q8_0: { bits: 8, block: 32, affine: false, shift: 128 },
  Q4_0: { bits: 4, block: 32, affine: false, shift: 8 },
  Q4_1: { bits: 4, block: 32, affine: true, shift: 0 },
  // Q5_0's code is r − 16 (r the 5-bit value): r − 16 + 128 = r + 112.
  Q5_0: { bits: 8, block: 32, affine: false, shift: 128 },
  Q5_1: { bits: 8, block: 32, affine: true, shift: 0 },
  Q2_K: { bits: 4, block: 16, affine: true, shift: 0 },
  // Q3_K's codes are −4..3; with the default zero 8 they are stored as 4..11.
  Q3_K: { bits: 4, block: 16, affine: false, shift: 8 },
  Q4_K: { bits: 4, block: 32, affine: true, shift: 0 },
  Q5_K: { bits: 8, block: 32, affine: true, shift: 0 },
  Q6_K: { bits: 8, block: 16, affine: false, shift: 128 },
  Q8_K: { bits: 8, block: 32, affine: false, shift: 128 },
};

/** The MatMulNBits bits and block size a GGUF format becomes, or undefined if it has no exact form. */
export function nbitsFormOf(format: string): { bits: 4 | 8; block: number; affine: boolean } | undefined {
  if (!isQuantized(format)) return undefined;
  const { bits, block, affine } = FORMS[format];
  return { bits, block, affine };
}

/**
 * Repacks `rows` × `cols` values of a GGUF format (the bytes of a [rows, cols] tensor, row-major) into
 * MatMulNBits form. cols must be a multiple of the format's sub-block (32, or 16 for Q2_K/Q3_K/Q6_K); rows may
 * share super-blocks (a tensor ComfyUI-GGUF reshaped), since every sub-block has its own scale.
 */
export function toNBits(format: QuantizedFormat, bytes: Uint8Array, rows: number, cols: number): NBitsHost {
  const f = FORMS[format];
  if (!f) throw new Error(`internal error: no MatMulNBits form for ${format}`);
  if (cols % f.block !== 0)
    throw new Error(`internal error: ${cols} columns are not whole ${format} sub-blocks of ${f.block}`);
  const count = rows * cols;
  const want = encodedBytes(format, count);
  if (bytes.byteLength !== want)
    throw new Error(
      `internal error: ${bytes.byteLength} bytes for ${rows}×${cols} ${format} values, which need ${want}`,
    );
  const h: NBitsHost = {
    bits: f.bits,
    block: f.block,
    rows,
    cols,
    packed: new Uint8Array((count * f.bits) / 8),
    scales: new Float32Array(count / f.block),
  };
  if (f.affine) {
    h.zeros = new Uint8Array(rows * zeroBytesPerRow(h)); // all zero points 0
    h.mins = new Float32Array(count / f.block);
  }
  if (format === 'Q8_0') repackQ8_0(bytes, h);
  else if (format === 'Q4_0' || format === 'Q4_1') repackQ4(bytes, h, format === 'Q4_1');
  else if (format === 'Q4_K' || format === 'Q5_K') repackK45(bytes, h, format === 'Q5_K');
  else if (format === 'Q5_0' || format === 'Q5_1') repackQ5(bytes, h, format === 'Q5_1');
  else if (format === 'Q6_K') repackQ6K(bytes, h);
  else repackGeneric(format, f, bytes, h);
  return h;
}

const f16 = f16At;

/** Q8_0: 2-byte d, 32 int8 codes → uint8 codes q + 128 (flip the sign bit). */
function repackQ8_0(b: Uint8Array, h: NBitsHost): void {
  const { scales, packed } = h;
  const n = scales.length;
  for (let k = 0, o = 0, p = 0; k < n; k++, o += 34, p += 32) {
    scales[k] = f16(b, o);
    for (let j = 0; j < 32; j++) packed[p + j] = b[o + 2 + j]! ^ 0x80;
  }
}

/** Q4_0/Q4_1: ggml keeps value j in the low nibble and j+16 in the high nibble of byte j; MatMulNBits wants 2p, 2p+1. */
function repackQ4(b: Uint8Array, h: NBitsHost, affine: boolean): void {
  const { scales, packed, mins } = h;
  const n = scales.length;
  const bb = affine ? 20 : 18;
  const qs0 = affine ? 4 : 2;
  for (let k = 0; k < n; k++) {
    const o = k * bb;
    scales[k] = f16(b, o);
    if (mins) mins[k] = -f16(b, o + 2);
    const qs = o + qs0;
    const p = k * 16;
    for (let i = 0; i < 8; i++) {
      // values 2i and 2i+1 (low nibbles of bytes 2i, 2i+1), then 16+2i and 17+2i (their high nibbles)
      const a = b[qs + 2 * i]!;
      const c = b[qs + 2 * i + 1]!;
      packed[p + i] = (a & 0x0f) | ((c & 0x0f) << 4);
      packed[p + 8 + i] = (a >> 4) | (c & 0xf0);
    }
  }
}

/**
 * Q4_K → 4 bits: sub-block s holds the low (even s) or high (odd s) nibbles of qs[32·⌊s/2⌋ ..], re-paired.
 * Q5_K → 8 bits: the same nibble plus bit s of qh[l] as the fifth bit.
 */
function repackK45(b: Uint8Array, h: NBitsHost, five: boolean): void {
  const { scales, packed } = h;
  const mins = h.mins!;
  const superBlocks = scales.length / 8;
  const bb = five ? 176 : 144;
  for (let k = 0; k < superBlocks; k++) {
    const o = k * bb;
    const d = f16(b, o);
    const dmin = f16(b, o + 2);
    for (let s = 0; s < 8; s++) {
      const [sc, mn] = scaleMinK4(b, o + 4, s);
      scales[k * 8 + s] = Math.fround(d * sc);
      mins[k * 8 + s] = Math.fround(dmin * mn);
      const q = o + (five ? 48 : 16) + (s >> 1) * 32;
      const shift = (s & 1) * 4;
      if (five) {
        const p = (k * 8 + s) * 32;
        for (let l = 0; l < 32; l++) packed[p + l] = ((b[q + l]! >> shift) & 0x0f) | (((b[o + 16 + l]! >> s) & 1) << 4);
      } else {
        const p = (k * 8 + s) * 16;
        for (let i = 0; i < 16; i++)
          packed[p + i] = ((b[q + 2 * i]! >> shift) & 0x0f) | (((b[q + 2 * i + 1]! >> shift) & 0x0f) << 4);
      }
    }
  }
}

/** Q5_0/Q5_1 → 8 bits: the low nibble (j, j+16 as in Q4) plus bit j of the LE u32 qh; Q5_0 stores r − 16 + 128. */
function repackQ5(b: Uint8Array, h: NBitsHost, affine: boolean): void {
  const { scales, packed, mins } = h;
  const n = scales.length;
  const bb = affine ? 24 : 22;
  const add = affine ? 0 : 112;
  for (let k = 0; k < n; k++) {
    const o = k * bb;
    scales[k] = f16(b, o);
    if (mins) mins[k] = -f16(b, o + 2);
    const at = o + (affine ? 4 : 2);
    const qh = (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
    const p = k * 32;
    for (let j = 0; j < 16; j++) {
      const q = b[at + 4 + j]!;
      packed[p + j] = ((q & 0x0f) | (((qh >>> j) & 1) << 4)) + add;
      packed[p + 16 + j] = ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) + add;
    }
  }
}

/** Q6_K → 8 bits, blocks of 16: 4 low bits from ql, 2 high bits from qh, stored r − 32 + 128; scale d·sc (int8 sc). */
function repackQ6K(b: Uint8Array, h: NBitsHost): void {
  const { scales, packed } = h;
  const superBlocks = scales.length / 16;
  for (let k = 0; k < superBlocks; k++) {
    const o = k * 210;
    const d = f16(b, o + 208);
    for (let j = 0; j < 16; j++) scales[k * 16 + j] = Math.fround(d * ((b[o + 192 + j]! << 24) >> 24));
    const p = k * 256;
    for (let n = 0; n < 2; n++) {
      const ql = o + n * 64;
      const qh = o + 128 + n * 32;
      const y = p + n * 128;
      for (let l = 0; l < 32; l++) {
        const hi = b[qh + l]!;
        const a = b[ql + l]!;
        const c = b[ql + 32 + l]!;
        packed[y + l] = ((a & 0x0f) | ((hi & 3) << 4)) + 96;
        packed[y + 32 + l] = ((c & 0x0f) | (((hi >> 2) & 3) << 4)) + 96;
        packed[y + 64 + l] = ((a >> 4) | (((hi >> 4) & 3) << 4)) + 96;
        packed[y + 96 + l] = ((c >> 4) | (((hi >> 6) & 3) << 4)) + 96;
      }
    }
  }
}

/** Every other format through the shared bit-layout reader: one scale (and min) per MatMulNBits block. */
function repackGeneric(format: QuantizedFormat, f: Form, b: Uint8Array, h: NBitsHost): void {
  const blocks = (h.rows * h.cols) / ggmlTypeByName(format)!.blockElems;
  const { scales, packed, mins } = h;
  const shift = f.shift;
  const log2 = Math.log2(f.block);
  const mask = f.block - 1;
  // packed is row-major over blocks, so value i's code sits at i (8 bits) or nibble i (4 bits)
  const put =
    f.bits === 8
      ? (i: number, q: number) => {
          packed[i] = q + shift;
        }
      : (i: number, q: number) => {
          packed[i >> 1] = packed[i >> 1]! | ((q + shift) << ((i & 1) << 2));
        };
  forEachCode(format, b, blocks, (i, q, s, m) => {
    if ((i & mask) === 0) {
      scales[i >> log2] = s;
      if (mins) mins[i >> log2] = m;
    }
    put(i, q);
  });
}
