/** 16-bit float conversions (Node 20 has no Float16Array; bf16 has no JS type at all). */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 bits, round to nearest even (NaN stays NaN). */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 → float16 bits, round to nearest even, overflow to ±Inf. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = man | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++;
  return sign | r;
}

export function bf16ToFloat32Array(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const o32 = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o32[i] = bits[i]! << 16;
  return out;
}

export function f16ToFloat32Array(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16BitsToF32(bits[i]!);
  return out;
}

export function float32ToBf16Array(x: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToBf16Bits(x[i]!);
  return out;
}

export function float32ToF16Array(x: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToF16Bits(x[i]!);
  return out;
}

/**
 * float8 e4m3fn (OCP FP8, the "fn" variant: no infinities, only S.1111.111 is NaN; bias 7, subnormals with
 * exponent field 0) → float32. Every one of the 256 codes is exact in float32.
 */
export function f8e4m3fnToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >>> 3) & 0x0f;
  const m = b & 0x07;
  if (e === 0x0f && m === 0x07) return NaN;
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}

const F8_TABLE = Float32Array.from({ length: 256 }, (_, b) => f8e4m3fnToF32(b));

export function f8e4m3fnToFloat32Array(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = F8_TABLE[bytes[i]!]!;
  return out;
}

/**
 * float32 → float8 e4m3fn bits, round to nearest even; magnitudes beyond the largest finite value (448) saturate
 * to it, as writers of fp8 checkpoints clamp before casting. NaN → 0x7f.
 */
export function f32ToF8e4m3fn(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 24) & 0x80;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return 0x7f;
  const exp = ((b >>> 23) & 0xff) - 127;
  const man = b & 0x7fffff;
  if (exp < -6) {
    // Subnormal (or zero): value / 2^-9 rounded to an integer 0..8 (8 is the smallest normal, code 0x08).
    const v = Math.abs(f32[0]!) * 512;
    let r = Math.floor(v);
    const rest = v - r;
    if (rest > 0.5 || (rest === 0.5 && r & 1)) r++;
    return sign | r;
  }
  let m = man >>> 20;
  const rest = man & 0xfffff;
  let e = exp + 7;
  if (rest > 0x80000 || (rest === 0x80000 && m & 1)) m++;
  if (m === 8) {
    m = 0;
    e++;
  }
  if (e > 15 || (e === 15 && m === 7)) return sign | 0x7e;
  return sign | (e << 3) | m;
}

export function float32ToF8e4m3fnArray(x: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32ToF8e4m3fn(x[i]!);
  return out;
}
