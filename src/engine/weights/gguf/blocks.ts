import { f16BitsToF32 } from '../dtype.ts';

/**
 * ggml's tensor types as GGUF files store them (ggml.h `enum ggml_type`, block layouts from ggml-common.h) and
 * their decoding, written from ggml's dequantize_row_* definitions (ggml-quants.c): every product and sum is
 * rounded to float32 separately, as the C code states it (no fused multiply-add), so the values match ggml's
 * reference CPU decoder bit for bit.
 */

export interface GgmlType {
  id: number;
  name: string;
  /** Values per block (1 for plain types). */
  blockElems: number;
  bytesPerBlock: number;
}

/** Types scenewright reads; block-quantized ones decode to float32. */
export const GGML_TYPES: readonly GgmlType[] = [
  { id: 0, name: 'F32', blockElems: 1, bytesPerBlock: 4 },
  { id: 1, name: 'F16', blockElems: 1, bytesPerBlock: 2 },
  { id: 2, name: 'Q4_0', blockElems: 32, bytesPerBlock: 18 },
  { id: 3, name: 'Q4_1', blockElems: 32, bytesPerBlock: 20 },
  { id: 6, name: 'Q5_0', blockElems: 32, bytesPerBlock: 22 },
  { id: 7, name: 'Q5_1', blockElems: 32, bytesPerBlock: 24 },
  { id: 8, name: 'Q8_0', blockElems: 32, bytesPerBlock: 34 },
  { id: 10, name: 'Q2_K', blockElems: 256, bytesPerBlock: 84 },
  { id: 11, name: 'Q3_K', blockElems: 256, bytesPerBlock: 110 },
  { id: 12, name: 'Q4_K', blockElems: 256, bytesPerBlock: 144 },
  { id: 13, name: 'Q5_K', blockElems: 256, bytesPerBlock: 176 },
  { id: 14, name: 'Q6_K', blockElems: 256, bytesPerBlock: 210 },
  { id: 15, name: 'Q8_K', blockElems: 256, bytesPerBlock: 292 },
  { id: 24, name: 'I8', blockElems: 1, bytesPerBlock: 1 },
  { id: 26, name: 'I32', blockElems: 1, bytesPerBlock: 4 },
  { id: 27, name: 'I64', blockElems: 1, bytesPerBlock: 8 },
  { id: 28, name: 'F64', blockElems: 1, bytesPerBlock: 8 },
  { id: 30, name: 'BF16', blockElems: 1, bytesPerBlock: 2 },
];

/** ggml type ids that exist (or existed) but that scenewright does not read: named in error messages. */
export const UNSUPPORTED_GGML_TYPES: Readonly<Record<number, string>> = {
  4: 'Q4_2 (removed from ggml)',
  5: 'Q4_3 (removed from ggml)',
  9: 'Q8_1',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  25: 'I16',
  29: 'IQ1_M',
  31: 'Q4_0_4_4',
  32: 'Q4_0_4_8',
  33: 'Q4_0_8_8',
  34: 'TQ1_0',
  35: 'TQ2_0',
  36: 'IQ4_NL_4_4',
  37: 'IQ4_NL_4_8',
  38: 'IQ4_NL_8_8',
  39: 'MXFP4',
  40: 'NVFP4',
  41: 'Q1_0',
  42: 'Q2_0',
};

const BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));
const BY_NAME = new Map(GGML_TYPES.map((t) => [t.name, t]));

/** The block-quantized formats decodeRows (and toNBits) read. */
export const QUANTIZED_FORMATS = [
  'Q4_0',
  'Q4_1',
  'Q5_0',
  'Q5_1',
  'Q8_0',
  'Q2_K',
  'Q3_K',
  'Q4_K',
  'Q5_K',
  'Q6_K',
  'Q8_K',
] as const;
export type QuantizedFormat = (typeof QUANTIZED_FORMATS)[number];
/** Formats decodeRows reads: the quantized ones and the float types. */
export type RowFormat = QuantizedFormat | 'F32' | 'F16' | 'BF16';

/** Formats with a per-block offset (min) besides the scale. */
export const AFFINE: ReadonlySet<string> = new Set(['Q4_1', 'Q5_1', 'Q2_K', 'Q4_K', 'Q5_K']);

export const ggmlTypeById = (id: number): GgmlType | undefined => BY_ID.get(id);
export const ggmlTypeByName = (name: string): GgmlType | undefined => BY_NAME.get(name);
export const isQuantized = (name: string): name is QuantizedFormat =>
  (QUANTIZED_FORMATS as readonly string[]).includes(name);

/** The name of any known ggml type id (for messages), else undefined. */
export function ggmlTypeName(id: number): string | undefined {
  return BY_ID.get(id)?.name ?? UNSUPPORTED_GGML_TYPES[id];
}

function typeOf(format: string): GgmlType {
  const t = BY_NAME.get(format);
  if (!t) throw new Error(`internal error: unknown ggml format ${format}`);
  return t;
}

/** Bytes of `count` values of a format; count must be whole blocks. */
export function encodedBytes(format: string, count: number): number {
  const t = typeOf(format);
  if (count % t.blockElems !== 0)
    throw new Error(`internal error: ${count} values are not whole ${format} blocks of ${t.blockElems}`);
  return (count / t.blockElems) * t.bytesPerBlock;
}

/** fp16 bits → float32 value, as a table (the decoders read one or two per block). */
const F16 = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = f16BitsToF32(i);
  return t;
})();
/** The fp16 value stored little-endian at b[i]. */
export const f16At = (b: Uint8Array, i: number) => F16[b[i]! | (b[i + 1]! << 8)]!;
const fr = Math.fround;

/** ggml's get_scale_min_k4: the j-th 6-bit scale and min of a Q4_K/Q5_K super-block's 12 packed bytes at `s`. */
export function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j]! & 63, b[s + j + 4]! & 63];
  return [(b[s + j + 4]! & 0x0f) | ((b[s + j - 4]! >> 6) << 4), (b[s + j + 4]! >> 4) | ((b[s + j]! >> 6) << 4)];
}

/** Q3_K's j-th 6-bit signed scale (−32..31) from its 12 packed bytes at `s`. */
export function scaleQ3K(b: Uint8Array, s: number, j: number): number {
  const low = j < 8 ? b[s + j]! & 0x0f : b[s + j - 8]! >> 4;
  const high = (b[s + 8 + (j % 4)]! >> (2 * (j >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

/**
 * Calls `emit(i, q, scale, min)` for every value i of the blocks: value = scale·q − min, with scale and min as
 * ggml computes them (float32) and q the integer code. Shared by decodeRows and toNBits so both read the bit
 * layouts one way. `min` is 0 for symmetric formats. Runs of 16 or 32 values share scale and min.
 */
export function forEachCode(
  format: QuantizedFormat,
  b: Uint8Array,
  blocks: number,
  emit: (i: number, q: number, scale: number, min: number) => void,
): void {
  const { bytesPerBlock: bb, blockElems: be } = typeOf(format);
  for (let k = 0; k < blocks; k++) {
    const o = k * bb;
    const y = k * be;
    switch (format) {
      case 'Q8_0': {
        const d = f16At(b, o);
        for (let j = 0; j < 32; j++) emit(y + j, (b[o + 2 + j]! << 24) >> 24, d, 0);
        break;
      }
      case 'Q4_0':
      case 'Q4_1': {
        const d = f16At(b, o);
        const affine = format === 'Q4_1';
        // Q4_1 adds its min m: value = d·q + m, i.e. min = −m.
        const m = affine ? -f16At(b, o + 2) : 0;
        const qs = o + (affine ? 4 : 2);
        const off = affine ? 0 : 8;
        for (let j = 0; j < 16; j++) {
          emit(y + j, (b[qs + j]! & 0x0f) - off, d, m);
          emit(y + j + 16, (b[qs + j]! >> 4) - off, d, m);
        }
        break;
      }
      case 'Q5_0':
      case 'Q5_1': {
        const d = f16At(b, o);
        const affine = format === 'Q5_1';
        const m = affine ? -f16At(b, o + 2) : 0;
        const h = o + (affine ? 4 : 2);
        const qh = (b[h]! | (b[h + 1]! << 8) | (b[h + 2]! << 16) | (b[h + 3]! << 24)) >>> 0;
        const qs = h + 4;
        const off = affine ? 0 : 16;
        for (let j = 0; j < 16; j++) {
          emit(y + j, ((b[qs + j]! & 0x0f) | (((qh >>> j) << 4) & 0x10)) - off, d, m);
          emit(y + j + 16, ((b[qs + j]! >> 4) | ((qh >>> (j + 12)) & 0x10)) - off, d, m);
        }
        break;
      }
      case 'Q2_K': {
        // scales[16] (low nibble scale, high nibble min), qs[64], d, dmin
        const d = f16At(b, o + 80);
        const dmin = f16At(b, o + 82);
        for (let e = 0; e < 256; e++) {
          const sc = b[o + (e >> 4)]!;
          const n = e >> 7;
          const shift = 2 * ((e >> 5) & 3);
          const l = e & 31;
          emit(y + e, (b[o + 16 + n * 32 + l]! >> shift) & 3, fr(d * (sc & 0x0f)), fr(dmin * (sc >> 4)));
        }
        break;
      }
      case 'Q3_K': {
        // hmask[32], qs[64], scales[12], d
        const d = f16At(b, o + 108);
        for (let e = 0; e < 256; e++) {
          const n = e >> 7;
          const jj = (e >> 5) & 3;
          const l = e & 31;
          const low = (b[o + 32 + n * 32 + l]! >> (2 * jj)) & 3;
          const high = b[o + l]! & (1 << (n * 4 + jj)) ? 0 : 4;
          emit(y + e, low - high, fr(d * scaleQ3K(b, o + 96, e >> 4)), 0);
        }
        break;
      }
      case 'Q4_K':
      case 'Q5_K': {
        // d, dmin, scales[12], (Q5_K: qh[32]), qs[128]
        const d = f16At(b, o);
        const dmin = f16At(b, o + 2);
        const five = format === 'Q5_K';
        const qs = o + (five ? 48 : 16);
        for (let sub = 0; sub < 8; sub++) {
          const [sc, mn] = scaleMinK4(b, o + 4, sub);
          const s = fr(d * sc);
          const m = fr(dmin * mn);
          const q = qs + (sub >> 1) * 32;
          const shift = (sub & 1) * 4;
          for (let l = 0; l < 32; l++) {
            const hi = five && b[o + 16 + l]! & (1 << sub) ? 16 : 0;
            emit(y + sub * 32 + l, ((b[q + l]! >> shift) & 0x0f) + hi, s, m);
          }
        }
        break;
      }
      case 'Q6_K': {
        // ql[128], qh[64], scales[16] (int8), d
        const d = f16At(b, o + 208);
        for (let e = 0; e < 256; e++) {
          const n = e >> 7;
          const g = (e >> 5) & 3;
          const l = e & 31;
          const ql = b[o + n * 64 + (g & 1) * 32 + l]!;
          const low = g < 2 ? ql & 0x0f : ql >> 4;
          const high = (b[o + 128 + n * 32 + l]! >> (2 * g)) & 3;
          const sc = (b[o + 192 + (e >> 4)]! << 24) >> 24;
          emit(y + e, (low | (high << 4)) - 32, fr(d * sc), 0);
        }
        break;
      }
      case 'Q8_K': {
        // d (float32), qs[256] (int8), bsums[16] (int16, unused when decoding)
        const d = new DataView(b.buffer, b.byteOffset + o, 4).getFloat32(0, true);
        for (let j = 0; j < 256; j++) emit(y + j, (b[o + 4 + j]! << 24) >> 24, d, 0);
        break;
      }
    }
  }
}

/**
 * ggml's dequantize_row_* for `rows` × `cols` values stored consecutively (row-major, as GGUF stores a
 * [rows, cols] tensor). rows·cols must be whole blocks; rows need not be (a reshaped tensor's rows may share a
 * super-block). Also reads the plain float types F32/F16/BF16.
 */
export function decodeRows(format: RowFormat, bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const count = rows * cols;
  const want = encodedBytes(format, count);
  if (bytes.byteLength !== want)
    throw new Error(
      `internal error: ${bytes.byteLength} bytes for ${rows}×${cols} ${format} values, which need ${want}`,
    );
  const out = new Float32Array(count);
  if (format === 'F32' || format === 'F16' || format === 'BF16') {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (format === 'F32') for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
    else if (format === 'F16') for (let i = 0; i < count; i++) out[i] = F16[dv.getUint16(2 * i, true)]!;
    else {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(2 * i, true) << 16;
    }
    return out;
  }
  // ggml: y = d·q (symmetric) or y = d·q − m / d·q + m (affine), each operation rounded to float32; a float64
  // product or sum of float32 values rounded once to float32 is that float32 operation exactly.
  const blocks = count / typeOf(format).blockElems;
  if (AFFINE.has(format))
    forEachCode(format, bytes, blocks, (i, q, s, m) => {
      out[i] = fr(s * q) - m;
    });
  else
    forEachCode(format, bytes, blocks, (i, q, s) => {
      out[i] = s * q;
    });
  return out;
}
