/**
 * Weight-only quantized linear weights in host memory, in com.microsoft.MatMulNBits' layout (ORT contrib ops):
 * a [N, K] weight is cut into blocks of `block` values along K; each block has a float scale, an optional
 * integer zero point (default 2^(bits−1)) and, for affine formats, an optional float min:
 *
 *   w[n, k] = scale[n, b] · (q[n, k] − zero[n, b]) − min[n, b],   b = ⌊k / block⌋.
 *
 * Values are packed per block (`block·bits/8` bytes), 4-bit ones two to a byte with the even element in the
 * low nibble. Zero points are packed the same way per row. Every array is row-major with the N rows first, so a
 * fused checkpoint's rows (BFL's q|k|v) are sliced without re-quantizing.
 */

export interface NBitsHost {
  bits: 4 | 8;
  block: number;
  /** N (output features). */
  rows: number;
  /** K (input features), a multiple of `block`. */
  cols: number;
  /** [N, K/block, block·bits/8]. */
  packed: Uint8Array;
  /** [N, K/block]. */
  scales: Float32Array;
  /** [N, ⌈(K/block)·bits/8⌉]; absent = 2^(bits−1) for every block. */
  zeros?: Uint8Array;
  /** [N, K/block]; absent = 0. */
  mins?: Float32Array;
}

export const blocksPerRow = (h: Pick<NBitsHost, 'cols' | 'block'>) => h.cols / h.block;
export const blockBytes = (h: Pick<NBitsHost, 'bits' | 'block'>) => (h.block * h.bits) / 8;
export const zeroBytesPerRow = (h: Pick<NBitsHost, 'bits' | 'cols' | 'block'>) =>
  Math.ceil((blocksPerRow(h) * h.bits) / 8);

/** Reads value j of a packed run of `bits`-bit values. */
export function unpack(bytes: Uint8Array, offset: number, j: number, bits: 4 | 8): number {
  if (bits === 8) return bytes[offset + j]!;
  const b = bytes[offset + (j >> 1)]!;
  return j & 1 ? b >> 4 : b & 0x0f;
}

/** Writes value j (already in range) of a packed run. */
export function pack(bytes: Uint8Array, offset: number, j: number, bits: 4 | 8, v: number): void {
  if (bits === 8) {
    bytes[offset + j] = v;
    return;
  }
  const i = offset + (j >> 1);
  bytes[i] = j & 1 ? (bytes[i]! & 0x0f) | (v << 4) : (bytes[i]! & 0xf0) | v;
}

/** The reference: every weight as float32 [N, K], computed exactly as the formula above (in float64, rounded once). */
export function dequantizeNBits(h: NBitsHost): Float32Array {
  const kb = blocksPerRow(h);
  const bb = blockBytes(h);
  const zb = zeroBytesPerRow(h);
  const out = new Float32Array(h.rows * h.cols);
  const defaultZero = 2 ** (h.bits - 1);
  for (let n = 0; n < h.rows; n++) {
    for (let b = 0; b < kb; b++) {
      const s = h.scales[n * kb + b]!;
      const z = h.zeros ? unpack(h.zeros, n * zb, b, h.bits) : defaultZero;
      const m = h.mins ? h.mins[n * kb + b]! : 0;
      const base = (n * kb + b) * bb;
      for (let j = 0; j < h.block; j++)
        out[n * h.cols + b * h.block + j] = s * (unpack(h.packed, base, j, h.bits) - z) - m;
    }
  }
  return out;
}

/**
 * Quantizes float weights [N, K] symmetrically per block, with the default zero point (no zeros or mins
 * tensors): scale = max|w| / (2^(bits−1) − 1), so codes span ±(2^(bits−1) − 1) and nothing clips; the error per
 * weight is at most scale/2. (GGUF's Q4_0 maps the signed extreme to −8 instead: one more level, but a value of
 * the opposite sign near the extreme clips by up to a whole step.)
 */
export function quantizeNBits(w: Float32Array, rows: number, cols: number, bits: 4 | 8, block: number): NBitsHost {
  if (cols % block !== 0)
    throw new Error(`internal error: ${cols} columns are not a multiple of the block size ${block}`);
  const h: NBitsHost = {
    bits,
    block,
    rows,
    cols,
    packed: new Uint8Array((rows * cols * bits) / 8),
    scales: new Float32Array((rows * cols) / block),
  };
  const half = 2 ** (bits - 1);
  const top = 2 ** bits - 1;
  const blocks = (rows * cols) / block;
  const bb = blockBytes(h);
  // Blocks are contiguous in both w and packed (a row is whole blocks). A code is ⌊v/scale + half + ½⌋: v/scale is
  // within ±(half − 1), so the sum is positive and truncation is rounding (half-way cases up, like Math.round).
  for (let b = 0; b < blocks; b++) {
    const at = b * block;
    let peak = 0;
    for (let j = 0; j < block; j++) {
      const a = Math.abs(w[at + j]!);
      if (a > peak) peak = a;
    }
    const scale = Math.fround(peak / (half - 1));
    h.scales[b] = scale;
    const inv = scale === 0 ? 0 : 1 / scale;
    const base = b * bb;
    const offset = half + 0.5;
    if (bits === 8) {
      for (let j = 0; j < block; j++) h.packed[base + j] = Math.min(top, (w[at + j]! * inv + offset) | 0);
    } else {
      for (let j = 0; j < block; j += 2) {
        h.packed[base + (j >> 1)] =
          Math.min(top, (w[at + j]! * inv + offset) | 0) | (Math.min(top, (w[at + j + 1]! * inv + offset) | 0) << 4);
      }
    }
  }
  return h;
}

/** The block size a form uses for a row of `cols` inputs: 32 (GGUF's and ORT's default), else the largest that divides. */
export function blockFor(cols: number): number | undefined {
  for (const b of [32, 16]) if (cols % b === 0) return b;
  return undefined;
}

/** Parts with the same bits, block and K joined along N. Parts without zeros/mins get explicit defaults when another has them. */
export function concatNBitsRows(parts: NBitsHost[]): NBitsHost {
  const first = parts[0]!;
  for (const p of parts) {
    if (p.bits !== first.bits || p.block !== first.block || p.cols !== first.cols)
      throw new Error('internal error: concatenating quantized weights of different forms');
  }
  const join = <T extends Uint8Array | Float32Array>(get: (p: NBitsHost) => T, make: (n: number) => T): T => {
    const arrays = parts.map(get);
    const out = make(arrays.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const a of arrays) {
      out.set(a, o);
      o += a.length;
    }
    return out;
  };
  const anyZeros = parts.some((p) => p.zeros);
  const anyMins = parts.some((p) => p.mins);
  const defaultZeros = (p: NBitsHost) => {
    const z = new Uint8Array(p.rows * zeroBytesPerRow(p));
    for (let n = 0; n < p.rows; n++)
      for (let b = 0; b < blocksPerRow(p); b++) pack(z, n * zeroBytesPerRow(p), b, p.bits, 2 ** (p.bits - 1));
    return z;
  };
  return {
    bits: first.bits,
    block: first.block,
    cols: first.cols,
    rows: parts.reduce((a, p) => a + p.rows, 0),
    packed: join(
      (p) => p.packed,
      (n) => new Uint8Array(n),
    ),
    scales: join(
      (p) => p.scales,
      (n) => new Float32Array(n),
    ),
    zeros: anyZeros
      ? join(
          (p) => p.zeros ?? defaultZeros(p),
          (n) => new Uint8Array(n),
        )
      : undefined,
    mins: anyMins
      ? join(
          (p) => p.mins ?? new Float32Array(p.rows * blocksPerRow(p)),
          (n) => new Float32Array(n),
        )
      : undefined,
  };
}
