/**
 * FLOP counts of one denoising step (matrix products only: 2 FLOPs per multiply-add; norms, softmax and
 * element-wise ops are left out, they are O(tokens·width) against O(tokens·width²)), for the step graph of a
 * signature and, for comparison, for upstream's implementation of the same step (RAG-SPEC.md §6.3), so that a
 * benchmark can print measured and predicted ratios to plain FLUX.
 */
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import { TIME_PROJ_DIM } from '../checkpoint/flux-config.ts';
import type { StepSignature } from './signature.ts';

export interface StepGeometry {
  /** Image tokens N = (H/16)·(W/16). */
  tokens: number;
  /** T5 length L. */
  textLength: number;
  /** Token count of each hard-binding box (length = signature.boxes). */
  boxTokens?: number[];
  /** Token count of the repaint pre-pass box (the mask's bounding box). */
  prepassTokens?: number;
}

export interface StepFlops {
  total: number;
  /** The main pass as plain FLUX. */
  main: number;
  /** Soft refinement in the main pass (and in the repaint pass, counted there). */
  sr: number;
  boxes: number;
  /** The repaint pass including its soft refinement. */
  repaint: number;
  prepass: number;
}

/** Multiply-adds of the embedders, temb and output projection of one stream. */
function io(cfg: FluxTransformerConfig, n: number, L: number): number {
  const D = cfg.inner;
  const mlp = (inDim: number) => inDim * D + D * D;
  const temb = mlp(TIME_PROJ_DIM) + (cfg.guidanceEmbeds ? mlp(TIME_PROJ_DIM) : 0) + mlp(cfg.pooledProjectionDim);
  const modulation = cfg.numLayers * 12 * D * D + cfg.numSingleLayers * 3 * D * D + 2 * D * D;
  return n * cfg.inChannels * D + L * cfg.jointAttentionDim * D + temb + modulation + n * D * cfg.outChannels;
}

/** Multiply-adds of one double block's linears for n image and L text tokens (no attention). */
function doubleLinears(cfg: FluxTransformerConfig, n: number, L: number): number {
  const D = cfg.inner;
  const perToken = 4 * D * D + 2 * D * cfg.mlp; // q, k, v, out + FF
  return (n + L) * perToken;
}

/** Multiply-adds of one single block's linears for s tokens (no attention). */
function singleLinears(cfg: FluxTransformerConfig, s: number): number {
  const D = cfg.inner;
  return s * (3 * D * D + D * cfg.mlp + (D + cfg.mlp) * D);
}

/** Multiply-adds of attention (QKᵀ and AV) for q queries against k keys. */
function attention(cfg: FluxTransformerConfig, q: number, k: number): number {
  return 2 * q * k * cfg.inner;
}

/** FLOPs of one plain FLUX forward on n image and L text tokens. */
export function plainPassFlops(cfg: FluxTransformerConfig, n: number, L: number): number {
  const s = n + L;
  const macs =
    io(cfg, n, L) +
    cfg.numLayers * (doubleLinears(cfg, n, L) + attention(cfg, s, s)) +
    cfg.numSingleLayers * (singleLinears(cfg, s) + attention(cfg, s, s));
  return 2 * macs;
}

/**
 * Extra FLOPs of soft refinement with S cells in one pass, as the step graph computes it: S text streams (their
 * context embedder, Q/K/V, to_add_out, FF), one shared SR image stream in the single blocks, per cell attention
 * with only the cell's image queries ((S·L + N) queries against L + N keys per block in all), and to_out of the
 * composite.
 */
export function srFlops(cfg: FluxTransformerConfig, S: number, N: number, L: number): number {
  if (S === 0) return 0;
  const D = cfg.inner;
  const cellAttn = attention(cfg, S * L + N, L + N);
  const double = doubleLinears(cfg, 0, S * L) + cellAttn + N * D * D;
  const single = singleLinears(cfg, N + S * L) + cellAttn;
  return 2 * (S * L * cfg.jointAttentionDim * D + cfg.numLayers * double + cfg.numSingleLayers * single);
}

/** FLOPs of one step of the step graph of `sig` (what one run() computes). */
export function stepFlops(cfg: FluxTransformerConfig, sig: StepSignature, g: StepGeometry): StepFlops {
  const { tokens: N, textLength: L } = g;
  const S = sig.cells;
  const boxes = Array.from({ length: sig.boxes }, (_, k) => g.boxTokens?.[k] ?? 0);
  if (sig.boxes && boxes.some((m) => m <= 0))
    throw new Error('stepFlops: give the token count of every box (boxTokens)');
  if (sig.prepass && !(g.prepassTokens && g.prepassTokens > 0))
    throw new Error('stepFlops: give the pre-pass box size (prepassTokens)');
  const main = plainPassFlops(cfg, N, L);
  const sr = srFlops(cfg, S, N, L);
  const box = boxes.reduce((a, m) => a + plainPassFlops(cfg, m, L), 0);
  const repaint = sig.repaint ? main + sr : 0;
  const prepass = sig.prepass ? plainPassFlops(cfg, g.prepassTokens!, L) : 0;
  return { total: main + sr + box + repaint + prepass, main, sr, boxes: box, repaint, prepass };
}

/**
 * FLOPs of the same step in upstream's code (RAG-SPEC §3.7, §6.3): each SR stream j recomputes the whole joint
 * attention in every double block (image Q/K/V included) and runs a full [L + N] single-block sequence, so SR
 * costs about S × (attention part of the double blocks + the single blocks); HB regional passes and the repaint
 * pass cost what they cost here.
 */
export function upstreamStepFlops(cfg: FluxTransformerConfig, sig: StepSignature, g: StepGeometry): number {
  const { tokens: N, textLength: L } = g;
  const S = sig.cells;
  const D = cfg.inner;
  const s = N + L;
  const perStreamDouble = 4 * N * D * D + 4 * L * D * D + 2 * L * D * cfg.mlp + attention(cfg, s, s);
  const perStreamSingle = singleLinears(cfg, s) + attention(cfg, s, s);
  const sr = S
    ? 2 *
      (S * L * cfg.jointAttentionDim * D +
        S * (cfg.numLayers * perStreamDouble + cfg.numSingleLayers * perStreamSingle))
    : 0;
  const ours = stepFlops(cfg, sig, g);
  return ours.main + sr + ours.boxes + (sig.repaint ? ours.main + sr : 0) + ours.prepass;
}
