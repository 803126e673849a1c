import { LORA_LIMITS } from '../../../rag/params.ts';
import { concatFloat32 } from '../../float32.ts';
import type { LoraLayer } from '../types.ts';
import { LoraFileError } from './errors.ts';
import { rankError, type ModulePlan } from './plan.ts';

/**
 * Turns one module's float32 factors into engine layers. A fused module's parts share its down array and take
 * their row blocks of up, which is exact: (B·A·x) restricted to rows r is B[r]·(A·x).
 */

/** Rows [start, start + rows) of a row-major [*, cols] matrix, copied. */
function rowBlock(m: Float32Array, cols: number, start: number, rows: number): Float32Array {
  return m.slice(start * cols, (start + rows) * cols);
}

/** Columns [c0, c0 + width) of rows [r0, r0 + rows) of a row-major [*, cols] matrix. */
function subMatrix(m: Float32Array, cols: number, r0: number, rows: number, c0: number, width: number): Float32Array {
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(m.subarray((r0 + r) * cols + c0, (r0 + r) * cols + c0 + width), r * width);
  return out;
}

/**
 * True if up is block-diagonal: part j's rows use only rank columns [j·r, (j+1)·r). kohya's split_qkv saves
 * q, k, v LoRAs of rank r this way, as one rank-3r module; reading it so gives rank r per layer, not 3r.
 */
function isBlockDiagonal(up: Float32Array, plan: ModulePlan): boolean {
  const n = plan.parts.length;
  const r = plan.rank / n;
  for (let j = 0; j < n; j++) {
    const { rowStart, rows } = plan.parts[j]!;
    for (let row = rowStart; row < rowStart + rows; row++) {
      const base = row * plan.rank;
      for (let c = 0; c < plan.rank; c++) {
        if (c >= j * r && c < (j + 1) * r) continue;
        if (up[base + c] !== 0) return false;
      }
    }
  }
  return true;
}

/** BFL's (shift, scale) halves of up become diffusers' (scale, shift). */
function swapHalves(up: Float32Array): Float32Array {
  const half = up.length / 2;
  return concatFloat32([up.subarray(half), up.subarray(0, half)]);
}

/**
 * alpha / rank with the file's rank (the rank of the module as stored, as kohya, diffusers and ComfyUI all scale
 * it); no alpha, or kohya's "0 means none", is 1.
 */
function alphaScale(file: string, plan: ModulePlan, alpha: number | undefined): number {
  if (alpha === undefined || alpha === 0) return 1;
  if (!Number.isFinite(alpha) || alpha < 0)
    throw new LoraFileError(`${file}: ${plan.alpha} is ${alpha}; an alpha must be a positive number`);
  return alpha / plan.rank;
}

export function buildLayers(
  file: string,
  plan: ModulePlan,
  down: Float32Array,
  upRaw: Float32Array,
  alpha: number | undefined,
): [string, LoraLayer][] {
  const scale = alphaScale(file, plan, alpha);
  const up = plan.swapHalves ? swapHalves(upRaw) : upRaw;
  const { inFeatures } = plan;
  const n = plan.parts.length;
  if (n === 1) {
    if (plan.rank > LORA_LIMITS.maxRank) throw rankError(file, plan.down, plan.rank);
    const outFeatures = plan.parts[0]!.rows;
    return [[plan.parts[0]!.layer, { down, up, rank: plan.rank, inFeatures, outFeatures, alphaScale: scale }]];
  }
  if (plan.rank % n === 0 && plan.rank > 1 && isBlockDiagonal(up, plan)) {
    const r = plan.rank / n;
    return plan.parts.map((p, j) => [
      p.layer,
      {
        down: rowBlock(down, inFeatures, j * r, r),
        up: subMatrix(up, plan.rank, p.rowStart, p.rows, j * r, r),
        rank: r,
        inFeatures,
        outFeatures: p.rows,
        alphaScale: scale,
      },
    ]);
  }
  if (plan.rank > LORA_LIMITS.maxRank) throw rankError(file, plan.down, plan.rank);
  return plan.parts.map((p) => [
    p.layer,
    {
      down,
      up: rowBlock(up, plan.rank, p.rowStart, p.rows),
      rank: plan.rank,
      inFeatures,
      outFeatures: p.rows,
      alphaScale: scale,
    },
  ]);
}
