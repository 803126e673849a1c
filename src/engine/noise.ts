/**
 * Seeded Gaussian noise that is the same on every machine, OS, CPU and Node version (FLUX's latent layout is in
 * latents.ts).
 *
 * THE NOISE CONTRACT (changing any detail changes every seeded image; treat it as a file format):
 *
 *  1. Bits: Philox4x32-10 (Salmon et al., SC'11, "Parallel random numbers: as easy as 1, 2, 3"; the
 *     Random123 constants M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85; ten rounds,
 *     the key bumped between rounds). Key = (seed mod 2^32, floor(seed / 2^32) mod 2^32) for an integer
 *     seed in [0, 2^64). Block j of a generator is the output (x0, x1, x2, x3) for the counter
 *     (j mod 2^32, floor(j / 2^32), 0, 0).
 *  2. Uniforms from block j, both from 52 bits, in float64:
 *       u1 = (x0 · 2^20 + (x1 >>> 12) + 0.5) / 2^52   in (0, 1), never 0
 *       u2 = (x2 · 2^20 + (x3 >>> 12)) / 2^52         in [0, 1)
 *  3. Box–Muller: r = sqrt(−2 · ln u1), θ = 2π · u2, values 2j = r · cos θ and 2j+1 = r · sin θ, each
 *     rounded to float32 (round-to-nearest-even, as Float32Array stores). ln, cos and sin are computed by
 *     the fixed series below from IEEE-754 +, −, ×, ÷ and sqrt only, which JavaScript guarantees to be
 *     correctly rounded, so no libm difference can change a bit. (Accuracy ≈ 1e-16 relative, far below
 *     the float32 rounding.)
 *  4. A tensor of n elements takes values 0 … n−1 in row-major order of its shape (NCHW for latents) and
 *     consumes ceil(n / 2) blocks. A `GaussianNoise` generator hands out consecutive blocks: draw k starts
 *     at the block after the last one draw k−1 used (an odd-sized draw leaves its last sine value unused).
 *     `gaussian(seed, shape)` is the first draw of a fresh generator.
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 values. */
function mulhi32(a: number, b: number): number {
  const aLo = a & 0xffff;
  const aHi = a >>> 16;
  const bLo = b & 0xffff;
  const bHi = b >>> 16;
  const lolo = aLo * bLo;
  const mid1 = aHi * bLo;
  const mid2 = aLo * bHi;
  const carry = ((lolo >>> 16) + (mid1 & 0xffff) + (mid2 & 0xffff)) >>> 16;
  return (aHi * bHi + (mid1 >>> 16) + (mid2 >>> 16) + carry) >>> 0;
}

/** Philox4x32-10 of one counter under one key; writes the four output words into `out`. */
export function philox4x32(
  counter: ArrayLike<number>,
  key: ArrayLike<number>,
  out: Uint32Array = new Uint32Array(4),
): Uint32Array {
  let c0 = counter[0]! >>> 0;
  let c1 = counter[1]! >>> 0;
  let c2 = counter[2]! >>> 0;
  let c3 = counter[3]! >>> 0;
  let k0 = key[0]! >>> 0;
  let k1 = key[1]! >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulhi32(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
  return out;
}

// Series coefficients, produced by IEEE division (deterministic): 1/(2k+1) for ln, ±1/n! for sin/cos.
const LN_COEF = Array.from({ length: 12 }, (_, k) => 1 / (2 * k + 1));
const FACT = [1];
for (let n = 1; n <= 25; n++) FACT.push(FACT[n - 1]! * n);
const SIN_COEF = Array.from({ length: 12 }, (_, k) => (k % 2 === 0 ? 1 : -1) / FACT[2 * k + 1]!);
const COS_COEF = Array.from({ length: 13 }, (_, k) => (k % 2 === 0 ? 1 : -1) / FACT[2 * k]!);
const LN2 = 0.6931471805599453;
const SQRT_HALF = 0.7071067811865476;
const HALF_PI = 1.5707963267948966;

/** ln(u) for u in (0, 1]: u = m·2^e with m in [√½, √2), ln m = 2·atanh((m−1)/(m+1)) by its series. */
function lnUnit(u: number): number {
  let m = u;
  let e = 0;
  while (m < 0.5) {
    m *= 2;
    e -= 1;
  }
  if (m < SQRT_HALF) {
    m *= 2;
    e -= 1;
  }
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let acc = 0;
  for (let k = LN_COEF.length - 1; k >= 0; k--) acc = acc * s2 + LN_COEF[k]!;
  return e * LN2 + 2 * s * acc;
}

/** (cos 2πu, sin 2πu) for u in [0, 1): exact quarter-turn reduction, then Taylor series on [0, π/2). */
function cosSinTurn(u: number, out: [number, number]): void {
  const x = u * 4; // exact
  const quadrant = Math.floor(x);
  const phi = (x - quadrant) * HALF_PI;
  const p2 = phi * phi;
  let s = 0;
  for (let k = SIN_COEF.length - 1; k >= 0; k--) s = s * p2 + SIN_COEF[k]!;
  s *= phi;
  let c = 0;
  for (let k = COS_COEF.length - 1; k >= 0; k--) c = c * p2 + COS_COEF[k]!;
  switch (quadrant) {
    case 0:
      out[0] = c;
      out[1] = s;
      break;
    case 1:
      out[0] = -s;
      out[1] = c;
      break;
    case 2:
      out[0] = -c;
      out[1] = -s;
      break;
    default:
      out[0] = s;
      out[1] = -c;
      break;
  }
}

const TWO_POW_32 = 2 ** 32;
const TWO_POW_20 = 2 ** 20;
const TWO_POW_M52 = 2 ** -52;

function seedKey(seed: number | bigint): [number, number] {
  const s = typeof seed === 'bigint' ? seed : Number.isSafeInteger(seed) && seed >= 0 ? BigInt(seed) : -1n;
  if (s < 0n || s >= 1n << 64n)
    throw new RangeError(`noise seed must be an integer from 0 to 2^64−1 (got ${String(seed)})`);
  return [Number(s & 0xffffffffn), Number(s >> 32n)];
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`bad tensor shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** A stream of Gaussian tensors for one seed (see the contract at the top of this file). */
export class GaussianNoise {
  private readonly key: [number, number];
  private block = 0;

  constructor(readonly seed: number | bigint) {
    this.key = seedKey(seed);
  }

  /** Blocks consumed so far (each block gives two values). */
  get blocksUsed(): number {
    return this.block;
  }

  /**
   * Continues at block `block` (clause 4: a stream is a pure function of the block index, so one long draw can be
   * cut into even-sized pieces drawn in any order or thread and come out bit-identical).
   */
  seek(block: number): this {
    if (!Number.isSafeInteger(block) || block < 0)
      throw new RangeError(`noise block must be a whole number ≥ 0 (got ${block})`);
    this.block = block;
    return this;
  }

  /** The next tensor of this shape, row-major, float32. */
  next(shape: readonly number[]): Float32Array {
    const n = elementCount(shape);
    const out = new Float32Array(n);
    const words = new Uint32Array(4);
    const counter = [0, 0, 0, 0];
    const cs: [number, number] = [0, 0];
    for (let i = 0; i < n; i += 2) {
      const j = this.block++;
      counter[0] = j % TWO_POW_32;
      counter[1] = Math.floor(j / TWO_POW_32);
      philox4x32(counter, this.key, words);
      const u1 = (words[0]! * TWO_POW_20 + (words[1]! >>> 12) + 0.5) * TWO_POW_M52;
      const u2 = (words[2]! * TWO_POW_20 + (words[3]! >>> 12)) * TWO_POW_M52;
      const r = Math.sqrt(-2 * lnUnit(u1));
      cosSinTurn(u2, cs);
      out[i] = r * cs[0];
      if (i + 1 < n) out[i + 1] = r * cs[1];
    }
    return out;
  }
}

/** The first draw of a fresh generator: same seed and shape, same tensor, everywhere. */
export function gaussian(seed: number | bigint, shape: readonly number[]): Float32Array {
  return new GaussianNoise(seed).next(shape);
}
