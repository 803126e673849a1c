import { writeFileSync } from 'node:fs';
import { f16BitsToF32, f32ToF16Bits, float32ToBf16Array, float32ToF16Array } from '../dtype.ts';
import { encodedBytes, ggmlTypeByName, type RowFormat } from './blocks.ts';
import {
  DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  ORIG_SHAPE_PREFIX,
  SCALAR_BYTES,
  VALUE_TYPES,
  type GgufValue,
  type ScalarTypeName,
  type TypedValue,
  type ValueTypeName,
} from './types.ts';

/**
 * Writes GGUF v3 files (tests, make-tiny-model) and encodes float rows into ggml block formats. The legacy
 * formats follow ggml's quantize_row_*_ref rules to the letter (float32 arithmetic, the same rounding), so they
 * produce the bytes llama.cpp's reference quantizer writes. The K formats use a simple encoder of our own that
 * is NOT llama.cpp's searched (error-minimising) quantizer: scales and mins are rounded up so no value clips,
 * and each value is rounded to its nearest code, so |x − decoded| ≤ scale/2 of its sub-block.
 */

export interface GgufTensorInput {
  name: string;
  /** A ggml type name: F32, F16, BF16, Q8_0, Q4_K, ... */
  format: string;
  /** PyTorch order ([out, in] for a linear weight). */
  shape: number[];
  data: Uint8Array;
  /**
   * Store the tensor with this shape instead and record `shape` under comfy.gguf.orig_shape.<name>, as
   * ComfyUI-GGUF does for tensors whose rows are not whole blocks.
   */
  storedShape?: number[];
}

export interface GgufInput {
  metadata?: Record<string, GgufValue | TypedValue>;
  tensors: GgufTensorInput[];
  /** general.alignment (written only when not the default 32). */
  alignment?: number;
}

const fr = Math.fround;

// ---------------------------------------------------------------------------------------------- metadata

function isTyped(v: GgufValue | TypedValue): v is TypedValue {
  return typeof v === 'object' && !Array.isArray(v) && v !== null && 'type' in v;
}

function inferType(v: GgufValue): ValueTypeName {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'bigint') return 'i64';
  if (Array.isArray(v)) return 'array';
  // gguf-py writes Python ints as INT32 and floats as FLOAT32.
  if (Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) return 'i32';
  return Number.isInteger(v) ? 'i64' : 'f32';
}

/** One element type for a whole array: the widest its values need (i32 < i64 < f32 for numbers). */
function inferElemType(v: GgufValue[], key: string): ValueTypeName {
  if (v.length === 0) return 'i32';
  const types = new Set(v.map(inferType));
  if (types.size === 1) return [...types][0]!;
  if ([...types].every((t) => t === 'i32' || t === 'i64' || t === 'f32')) return types.has('f32') ? 'f32' : 'i64';
  throw new Error(
    `GGUF metadata ${key}: an array must hold values of one type (got ${[...types].join(', ')}); give it a { type, value }`,
  );
}

class Out {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n) this.push(Buffer.alloc(n));
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function writeScalar(out: Out, type: ScalarTypeName, v: GgufValue, key: string): void {
  const bad = () => new Error(`GGUF metadata ${key}: ${String(v)} is not a valid ${type}`);
  if (type === 'string') {
    if (typeof v !== 'string') throw bad();
    out.string(v);
    return;
  }
  if (type === 'bool') {
    if (typeof v !== 'boolean') throw bad();
    out.push(Buffer.from([v ? 1 : 0]));
    return;
  }
  if (typeof v !== 'number' && typeof v !== 'bigint') throw bad();
  const b = Buffer.alloc(SCALAR_BYTES[type]!);
  const n = Number(v);
  switch (type) {
    case 'u8':
      b.writeUInt8(n);
      break;
    case 'i8':
      b.writeInt8(n);
      break;
    case 'u16':
      b.writeUInt16LE(n);
      break;
    case 'i16':
      b.writeInt16LE(n);
      break;
    case 'u32':
      b.writeUInt32LE(n);
      break;
    case 'i32':
      b.writeInt32LE(n);
      break;
    case 'f32':
      b.writeFloatLE(n);
      break;
    case 'f64':
      b.writeDoubleLE(n);
      break;
    case 'u64':
      b.writeBigUInt64LE(BigInt(v));
      break;
    case 'i64':
      b.writeBigInt64LE(BigInt(v));
      break;
  }
  out.push(b);
}

function writeValue(out: Out, key: string, raw: GgufValue | TypedValue): void {
  const typed = isTyped(raw);
  const v = typed ? raw.value : raw;
  if (Array.isArray(v)) {
    const elem = typed ? raw.type : inferElemType(v, key);
    out.u32(VALUE_TYPES.indexOf('array'));
    out.u32(VALUE_TYPES.indexOf(elem));
    out.u64(v.length);
    for (const x of v) {
      if (elem === 'array') writeArrayBody(out, key, x);
      else writeScalar(out, elem as ScalarTypeName, x, key);
    }
    return;
  }
  const type = typed ? raw.type : (inferType(v) as ScalarTypeName);
  out.u32(VALUE_TYPES.indexOf(type));
  writeScalar(out, type, v, key);
}

/** A nested array (array of arrays): element type + count + elements, without the outer type tag. */
function writeArrayBody(out: Out, key: string, v: GgufValue): void {
  if (!Array.isArray(v)) throw new Error(`GGUF metadata ${key}: nested arrays must all be arrays`);
  const elem = inferElemType(v, key);
  out.u32(VALUE_TYPES.indexOf(elem));
  out.u64(v.length);
  for (const x of v) {
    if (elem === 'array') writeArrayBody(out, key, x);
    else writeScalar(out, elem as ScalarTypeName, x, key);
  }
}

// ---------------------------------------------------------------------------------------------- file

/** A GGUF v3 file: metadata, tensor infos (ne = shape reversed), data aligned to `alignment`. */
export function encodeGguf(input: GgufInput): Buffer {
  const alignment = input.alignment ?? DEFAULT_ALIGNMENT;
  const metadata: Record<string, GgufValue | TypedValue> = { ...input.metadata };
  if (alignment !== DEFAULT_ALIGNMENT) metadata['general.alignment'] = { type: 'u32', value: alignment };
  for (const t of input.tensors)
    if (t.storedShape) metadata[ORIG_SHAPE_PREFIX + t.name] = { type: 'i32', value: t.shape };

  const out = new Out();
  out.push(Buffer.from(GGUF_MAGIC, 'latin1'));
  out.u32(3);
  out.u64(input.tensors.length);
  out.u64(Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) {
    out.string(k);
    writeValue(out, k, v);
  }
  let offset = 0;
  for (const t of input.tensors) {
    const type = ggmlTypeByName(t.format);
    if (!type) throw new Error(`tensor ${t.name}: unknown ggml format ${t.format}`);
    const stored = t.storedShape ?? t.shape;
    const count = stored.reduce((a, b) => a * b, 1);
    if (count !== t.shape.reduce((a, b) => a * b, 1))
      throw new Error(`tensor ${t.name}: stored shape [${stored}] does not hold shape [${t.shape}]`);
    const want = encodedBytes(t.format, count);
    if (t.data.byteLength !== want)
      throw new Error(
        `tensor ${t.name}: ${t.data.byteLength} bytes of data, [${t.shape}] of ${t.format} needs ${want}`,
      );
    out.string(t.name);
    out.u32(stored.length);
    for (const d of [...stored].reverse()) out.u64(d);
    out.u32(type.id);
    out.u64(offset);
    offset += want + ((alignment - (want % alignment)) % alignment);
  }
  out.pad(alignment);
  for (const t of input.tensors) {
    out.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    out.pad(alignment);
  }
  return out.concat();
}

export function writeGguf(path: string, input: GgufInput): void {
  writeFileSync(path, encodeGguf(input));
}

// ---------------------------------------------------------------------------------------------- rows

/** C's roundf: halves away from zero. */
const roundf = (x: number) => (x < 0 ? -Math.round(-x) : Math.round(x));
const h16 = (b: Uint8Array, i: number, v: number) => {
  const bits = f32ToF16Bits(v);
  b[i] = bits & 0xff;
  b[i + 1] = bits >> 8;
};
/** ggml's nearest_int: float32 rounding to nearest, ties to even (|v| < 2^22). */
const nearestInt = (v: number) => fr(v + 12582912) - 12582912;
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

/** Encodes rows × cols float values (row-major) in a ggml format; rows·cols must be whole blocks. */
export function encodeRows(format: RowFormat, values: Float32Array, rows: number, cols: number): Uint8Array {
  const count = rows * cols;
  if (values.length !== count) throw new Error(`internal error: ${values.length} values for ${rows}×${cols}`);
  const out = new Uint8Array(encodedBytes(format, count));
  switch (format) {
    case 'F32':
      out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      break;
    case 'F16':
      out.set(new Uint8Array(float32ToF16Array(values).buffer));
      break;
    case 'BF16':
      out.set(new Uint8Array(float32ToBf16Array(values).buffer));
      break;
    case 'Q8_0':
    case 'Q4_0':
    case 'Q4_1':
    case 'Q5_0':
    case 'Q5_1':
      for (let k = 0; k < count / 32; k++)
        LEGACY[format](values.subarray(k * 32, k * 32 + 32), out, k * ggmlTypeByName(format)!.bytesPerBlock);
      break;
    default:
      for (let k = 0; k < count / 256; k++)
        K_ENCODERS[format](values.subarray(k * 256, k * 256 + 256), out, k * ggmlTypeByName(format)!.bytesPerBlock);
  }
  return out;
}

function absMax(x: Float32Array): { amax: number; max: number } {
  let amax = 0;
  let max = 0;
  for (const v of x)
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  return { amax, max };
}
function minMax(x: Float32Array): { min: number; max: number } {
  let min = 3.4028234663852886e38;
  let max = -min;
  for (const v of x) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** ggml's quantize_row_*_ref for the 32-value formats, one block at a time (all arithmetic in float32). */
const LEGACY: Record<'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1', (x: Float32Array, b: Uint8Array, o: number) => void> =
  {
    Q8_0(x, b, o) {
      const { amax } = absMax(x);
      const d = fr(amax / 127);
      const id = d ? fr(1 / d) : 0;
      h16(b, o, d);
      for (let j = 0; j < 32; j++) b[o + 2 + j] = roundf(fr(x[j]! * id)) & 0xff;
    },
    Q4_0: (x, b, o) => legacySymmetric(x, b, o, 8, 15, (code) => pack4(b, o + 2, code)),
    Q4_1: (x, b, o) => legacyAffine(x, b, o, 15, 15, (code) => pack4(b, o + 4, code)),
    Q5_0: (x, b, o) => legacySymmetric(x, b, o, 16, 31, (code) => pack5(b, o + 2, code)),
    // quantize_row_q5_1_ref has no MIN(31, ·): its codes never exceed 31
    Q5_1: (x, b, o) => legacyAffine(x, b, o, 31, 255, (code) => pack5(b, o + 4, code)),
  };

/** Q4_0/Q5_0: d = max/−half (max the value of largest magnitude), code = min(top, (int)(x/d + half + 0.5)). */
function legacySymmetric(
  x: Float32Array,
  b: Uint8Array,
  o: number,
  half: number,
  top: number,
  put: (code: (j: number) => number) => void,
): void {
  const { max } = absMax(x);
  const d = fr(max / -half);
  const id = d ? fr(1 / d) : 0;
  h16(b, o, d);
  put((j) => Math.min(top, Math.trunc(fr(fr(x[j]! * id) + half + 0.5))));
}

/** Q4_1/Q5_1: d = (max − min)/levels, m = min, code = min(top, (int)((x − min)/d + 0.5)). */
function legacyAffine(
  x: Float32Array,
  b: Uint8Array,
  o: number,
  levels: number,
  top: number,
  put: (code: (j: number) => number) => void,
): void {
  const { min, max } = minMax(x);
  const d = fr(fr(max - min) / levels);
  const id = d ? fr(1 / d) : 0;
  h16(b, o, d);
  h16(b, o + 2, min);
  put((j) => Math.min(top, Math.trunc(fr(fr(fr(x[j]! - min) * id) + 0.5))));
}

/** Q4_0/Q4_1's qs: value j in the low nibble, j + 16 in the high nibble of byte j. */
function pack4(b: Uint8Array, at: number, code: (j: number) => number): void {
  for (let j = 0; j < 16; j++) b[at + j] = code(j) | (code(j + 16) << 4);
}

/** Q5_0/Q5_1's qh (bit j = high bit of value j, LE u32) then qs (value j low nibble, j+16 high nibble). */
function pack5(b: Uint8Array, at: number, code: (j: number) => number): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const lo = code(j);
    const hi = code(j + 16);
    b[at + 4 + j] = (lo & 0x0f) | ((hi & 0x0f) << 4);
    qh |= ((lo & 0x10) >> 4) << j;
    qh |= ((hi & 0x10) >> 4) << (j + 16);
  }
  new DataView(b.buffer, b.byteOffset).setUint32(at, qh >>> 0, true);
}

// K formats: our own encoder (see the file comment).

/** The smallest fp16 value ≥ v (v ≥ 0 and finite in fp16), so scales rounded to fp16 never shrink. */
function f16Up(v: number): number {
  if (!(v > 0)) return 0;
  let bits = f32ToF16Bits(v);
  if (f16BitsToF32(bits) < v) bits++;
  if ((bits & 0x7c00) === 0x7c00) throw new Error(`values too large for an fp16 block scale (${v})`);
  return bits;
}

/**
 * One affine super-block: per sub-block of `sub` values, value ≈ (d·sc)·q − dmin·m with q in 0..qmax and sc, m in
 * 0..smax. Returns the fp16 bits of d and dmin, the sc/m per sub-block and the codes.
 */
function affineSuper(x: Float32Array, sub: number, qmax: number, smax: number) {
  const n = x.length / sub;
  const mins = new Float64Array(n);
  const his = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const { min, max } = minMax(x.subarray(j * sub, (j + 1) * sub));
    mins[j] = Math.max(0, -min); // ggml's mins are ≥ 0 (value = d·q − m); a positive block min stays at 0
    his[j] = max;
  }
  const dminBits = f16Up((Math.max(...mins) / smax) * (1 + 2 ** -10));
  const dmin = f16BitsToF32(dminBits);
  const m = Array.from(mins, (v) => (dmin ? clamp(Math.ceil(v / dmin), 0, smax) : 0));
  const meff = m.map((mj) => fr(dmin * mj));
  const spans = Array.from(his, (hi, j) => Math.max(0, hi + meff[j]!));
  const dBits = f16Up((Math.max(...spans) / qmax / smax) * (1 + 2 ** -10));
  const d = f16BitsToF32(dBits);
  const sc = spans.map((s) => (d ? clamp(Math.ceil(s / qmax / d), 0, smax) : 0));
  const q = new Uint8Array(x.length);
  for (let j = 0; j < n; j++) {
    const s = fr(d * sc[j]!);
    for (let l = 0; l < sub; l++) q[j * sub + l] = s ? clamp(Math.round((x[j * sub + l]! + meff[j]!) / s), 0, qmax) : 0;
  }
  return { dBits, dminBits, sc, m, q };
}

/** One symmetric super-block: value ≈ (d·sc)·q, q in qmin..qmax, sc in 1..smax (signed storage). */
function symmetricSuper(x: Float32Array, sub: number, qmin: number, qmax: number, smax: number) {
  const n = x.length / sub;
  const need = Array.from(
    { length: n },
    (_, j) => absMax(x.subarray(j * sub, (j + 1) * sub)).amax / Math.min(qmax, -qmin),
  );
  const dBits = f16Up((Math.max(...need) / smax) * (1 + 2 ** -10));
  const d = f16BitsToF32(dBits);
  const sc = need.map((v) => (d ? clamp(Math.ceil(v / d), 0, smax) : 0));
  const q = new Int8Array(x.length);
  for (let j = 0; j < n; j++) {
    const s = fr(d * sc[j]!);
    for (let l = 0; l < sub; l++) q[j * sub + l] = s ? clamp(Math.round(x[j * sub + l]! / s), qmin, qmax) : 0;
  }
  return { dBits, sc, q };
}

const orAt = (b: Uint8Array, i: number, v: number) => {
  b[i] = b[i]! | v;
};
const put16 = (b: Uint8Array, i: number, bits: number) => {
  b[i] = bits & 0xff;
  b[i + 1] = bits >> 8;
};

/** Q4_K/Q5_K's 12 bytes of 6-bit scales and mins (the inverse of ggml's get_scale_min_k4). */
function packScalesK4(b: Uint8Array, s: number, sc: number[], m: number[]): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      b[s + j] = (b[s + j]! & 0xc0) | sc[j]!;
      b[s + j + 4] = (b[s + j + 4]! & 0xc0) | m[j]!;
    } else {
      b[s + j + 4] = (sc[j]! & 0x0f) | ((m[j]! & 0x0f) << 4);
      orAt(b, s + j - 4, (sc[j]! >> 4) << 6);
      orAt(b, s + j, (m[j]! >> 4) << 6);
    }
  }
}

const K_ENCODERS: Record<
  'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'Q8_K',
  (x: Float32Array, b: Uint8Array, o: number) => void
> = {
  Q2_K(x, b, o) {
    const { dBits, dminBits, sc, m, q } = affineSuper(x, 16, 3, 15);
    for (let j = 0; j < 16; j++) b[o + j] = sc[j]! | (m[j]! << 4);
    for (let e = 0; e < 256; e++) orAt(b, o + 16 + (e >> 7) * 32 + (e & 31), q[e]! << (2 * ((e >> 5) & 3)));
    put16(b, o + 80, dBits);
    put16(b, o + 82, dminBits);
  },
  Q3_K(x, b, o) {
    const { dBits, sc, q } = symmetricSuper(x, 16, -4, 3, 31);
    for (let j = 0; j < 16; j++) {
      const v = sc[j]! + 32;
      if (j < 8) orAt(b, o + 96 + j, v & 0x0f);
      else orAt(b, o + 96 + j - 8, (v & 0x0f) << 4);
      orAt(b, o + 96 + 8 + (j % 4), (v >> 4) << (2 * (j >> 2)));
    }
    for (let e = 0; e < 256; e++) {
      const u = q[e]! + 4;
      const n = e >> 7;
      const jj = (e >> 5) & 3;
      orAt(b, o + 32 + n * 32 + (e & 31), (u & 3) << (2 * jj));
      if (u >> 2) orAt(b, o + (e & 31), 1 << (n * 4 + jj));
    }
    put16(b, o + 108, dBits);
  },
  Q4_K(x, b, o) {
    const { dBits, dminBits, sc, m, q } = affineSuper(x, 32, 15, 63);
    put16(b, o, dBits);
    put16(b, o + 2, dminBits);
    packScalesK4(b, o + 4, sc, m);
    for (let e = 0; e < 256; e++) orAt(b, o + 16 + (e >> 6) * 32 + (e & 31), q[e]! << (((e >> 5) & 1) * 4));
  },
  Q5_K(x, b, o) {
    const { dBits, dminBits, sc, m, q } = affineSuper(x, 32, 31, 63);
    put16(b, o, dBits);
    put16(b, o + 2, dminBits);
    packScalesK4(b, o + 4, sc, m);
    for (let e = 0; e < 256; e++) {
      orAt(b, o + 48 + (e >> 6) * 32 + (e & 31), (q[e]! & 0x0f) << (((e >> 5) & 1) * 4));
      orAt(b, o + 16 + (e & 31), (q[e]! >> 4) << (e >> 5));
    }
  },
  Q6_K(x, b, o) {
    const { dBits, sc, q } = symmetricSuper(x, 16, -32, 31, 127);
    for (let e = 0; e < 256; e++) {
      const r = q[e]! + 32;
      const n = e >> 7;
      const g = (e >> 5) & 3;
      const l = e & 31;
      orAt(b, o + n * 64 + (g & 1) * 32 + l, (r & 0x0f) << (g < 2 ? 0 : 4));
      orAt(b, o + 128 + n * 32 + l, (r >> 4) << (2 * g));
    }
    for (let j = 0; j < 16; j++) b[o + 192 + j] = sc[j]! & 0xff;
    put16(b, o + 208, dBits);
  },
  Q8_K(x, b, o) {
    // As ggml's quantize_row_q8_K_ref: d = max/−127 (float32), codes nearest (ties to even) clamped to 127, bsums per 16.
    const { amax, max } = absMax(x);
    const dv = new DataView(b.buffer, b.byteOffset);
    if (!amax) {
      dv.setFloat32(o, 0, true);
      return;
    }
    const iscale = fr(-127 / max);
    for (let j = 0; j < 256; j++) b[o + 4 + j] = Math.min(127, nearestInt(fr(iscale * x[j]!))) & 0xff;
    for (let j = 0; j < 16; j++) {
      let sum = 0;
      for (let l = 0; l < 16; l++) sum += (b[o + 4 + j * 16 + l]! << 24) >> 24;
      dv.setInt16(o + 260 + 2 * j, sum, true);
    }
    dv.setFloat32(o, fr(1 / iscale), true);
  },
};
