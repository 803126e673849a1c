/**
 * A job's styles as step-graph feeds (lora/graph.ts; semantics in docs/styles.md): the distinct LoRAs of the
 * job, each one column of the weight tables; per adapted layer their factors side by side with scale × alpha/rank
 * folded into B; and the weight of every LoRA on every row of every stream.
 *
 * Built once per job (before its first step), not per step: a step only picks which rows its streams take.
 */
import { UserError } from '../../config/errors.ts';
import type { TokenRect } from '../../rag/boxes.ts';
import { LORA_LIMITS, type LoraRef } from '../../rag/params.ts';
import type { LoraFile, LoraLayer } from './types.ts';

/** Tokens of soft edge around a region's box or a repaint mask: weights 2/3, 1/3, then 0 (docs/styles.md). */
export const LORA_EDGE_TOKENS = 2;

/**
 * The styles a plan asks for: global, per hard-binding box (its token rectangle kept here, since a stored-mode
 * replay drops the plan's boxes but its main pass still carries their styles), and the repainted region's.
 */
export interface PlanLoras {
  global: LoraRef[];
  boxes: { rect: TokenRect; loras: LoraRef[] }[];
  repaint: LoraRef[];
}

/** One LoRA of a job: a file at a scale (the same file at two scales is two LoRAs). */
export interface LoraEntry {
  file: LoraFile;
  scale: number;
  /** As the job named it (a path), for messages. */
  name: string;
}

/** One layer's factors for the job: down [Rl, in], up [out, Rl] (scaled), owner [Rl]. */
export interface LayerFactors {
  down: Float32Array;
  up: Float32Array;
  owner: BigInt64Array;
  rank: number;
}

/** Everything a job's steps feed about LoRA, computed once. */
export interface LoraRun {
  entries: LoraEntry[];
  layers: Map<string, LayerFactors>;
  /** Rows [nL] of the streams that carry a style on every token. */
  rows: { global: Float32Array; boxes: Float32Array[]; repaint: Float32Array };
  /** The main pass's image tokens [N, nL]: global styles, and each box's styles under its soft mask. */
  mainImg: Float32Array;
  /** The repaint pass's image tokens [N, nL]: the repaint's styles under the mask's soft edge, the main's outside. */
  repaintImg?: Float32Array;
}

/** What a step feeds: the job's factors and this step's rows per stream (StepRunner turns them into tensors). */
export interface StepLora {
  layers: Map<string, LayerFactors>;
  count: number;
  main: { img: Float32Array; txt: Float32Array };
  repaint?: { img: Float32Array; txt: Float32Array };
  /** One row per regional stream, in the step's order (boxes, then the pre-pass). */
  regional: Float32Array[];
}

export function planHasLoras(p: PlanLoras | undefined): boolean {
  return !!p && (p.global.length > 0 || p.repaint.length > 0 || p.boxes.some((b) => b.loras.length > 0));
}

/** The distinct (file, scale) pairs of a plan, in first-use order: global, boxes, repaint. */
export function distinctLoraRefs(p: PlanLoras): LoraRef[] {
  const seen = new Map<string, LoraRef>();
  for (const r of [...p.global, ...p.boxes.flatMap((b) => b.loras), ...p.repaint])
    seen.set(refKey(r), seen.get(refKey(r)) ?? r);
  return [...seen.values()];
}

export function refKey(r: LoraRef): string {
  return `${r.name}\u0000${r.scale}`;
}

/** Refuses what the step graph does not take, before any step runs (names the style and the limit). */
export function checkLoraLimits(entries: LoraEntry[], layers: Map<string, readonly [number, number]>): void {
  const { maxLoras, maxRank, minScale, maxScale } = LORA_LIMITS;
  if (entries.length > maxLoras)
    throw new UserError(
      `this job uses ${entries.length} styles (LoRA files at distinct scales); the engine takes at most ${maxLoras}: drop some styles or use one scale per style`,
    );
  for (const e of entries) {
    if (!(e.scale >= minScale && e.scale <= maxScale))
      throw new UserError(
        `style ${e.name}: scale ${e.scale} is outside ${minScale}…${maxScale}; pick a scale in that range`,
      );
    if (e.file.layers.size === 0)
      throw new UserError(`style ${e.name} (${e.file.path}) adapts no layer of this model: it cannot change anything`);
    for (const [name, l] of e.file.layers) {
      if (l.rank > maxRank)
        throw new UserError(
          `style ${e.name} (${e.file.path}) has rank ${l.rank} on ${name}; the engine takes ranks up to ${maxRank}: use a LoRA of lower rank (or resize it)`,
        );
      checkLayer(e, name, l, layers.get(name));
    }
  }
}

function checkLayer(e: LoraEntry, name: string, l: LoraLayer, shape: readonly [number, number] | undefined): void {
  const where = `style ${e.name} (${e.file.path}), layer ${name}`;
  if (!shape) throw new UserError(`${where}: this model has no such linear layer; is the LoRA for another model?`);
  const [out, inn] = shape;
  if (l.inFeatures !== inn || l.outFeatures !== out)
    throw new UserError(
      `${where}: the LoRA is ${l.outFeatures}×${l.inFeatures} but the model's layer is ${out}×${inn}`,
    );
  if (l.down.length !== l.rank * inn || l.up.length !== out * l.rank)
    throw new UserError(
      `${where}: down has ${l.down.length} values and up ${l.up.length}; rank ${l.rank} needs ${l.rank * inn} and ${out * l.rank}`,
    );
}

/** Per adapted layer, every entry's factors side by side; B scaled by the entry's scale × alpha/rank. */
export function layerFactors(entries: LoraEntry[]): Map<string, LayerFactors> {
  const byLayer = new Map<string, { k: number; l: LoraLayer }[]>();
  entries.forEach((e, k) => {
    for (const [name, l] of e.file.layers) {
      let list = byLayer.get(name);
      if (!list) byLayer.set(name, (list = []));
      list.push({ k, l });
    }
  });
  const out = new Map<string, LayerFactors>();
  for (const [name, parts] of byLayer) {
    const rank = parts.reduce((n, p) => n + p.l.rank, 0);
    const { inFeatures: K, outFeatures: N } = parts[0]!.l;
    // One LoRA on the layer: its A as it is (no copy).
    const down = parts.length === 1 ? parts[0]!.l.down : new Float32Array(rank * K);
    const up = new Float32Array(N * rank);
    const owner = new BigInt64Array(rank);
    let at = 0;
    for (const { k, l } of parts) {
      const s = Math.fround(entries[k]!.scale * l.alphaScale);
      if (parts.length > 1) down.set(l.down, at * K);
      for (let o = 0; o < N; o++) {
        const src = o * l.rank;
        const dst = o * rank + at;
        for (let r = 0; r < l.rank; r++) up[dst + r] = l.up[src + r]! * s;
      }
      owner.fill(BigInt(k), at, at + l.rank);
      at += l.rank;
    }
    out.set(name, { down, up, owner, rank });
  }
  return out;
}

/**
 * A token grid's soft weights from a 0/1 mask: 1 inside, falling by 1/(edge + 1) per token of Chebyshev distance
 * outside (edge 2: 2/3, 1/3, 0).
 */
export function softMask(inside: ArrayLike<number>, rows: number, cols: number, edge = LORA_EDGE_TOKENS): Float32Array {
  let w = Float32Array.from(inside, (v) => (v ? 1 : 0));
  const step = 1 / (edge + 1);
  for (let pass = 0; pass < edge; pass++) {
    const next = w.slice();
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        let m = 0;
        for (let dr = -1; dr <= 1; dr++)
          for (let dc = -1; dc <= 1; dc++) {
            const rr = r + dr;
            const cc = c + dc;
            if (rr >= 0 && rr < rows && cc >= 0 && cc < cols) m = Math.max(m, w[rr * cols + cc]!);
          }
        next[r * cols + c] = Math.max(w[r * cols + c]!, m - step);
      }
    w = next;
  }
  return w.map((v) => (v < 1e-6 ? 0 : v));
}

function rectMask(rect: TokenRect, rows: number, cols: number): Uint8Array {
  const m = new Uint8Array(rows * cols);
  for (let r = rect.r0; r < rect.r1; r++) m.fill(1, r * cols + rect.c0, r * cols + rect.c1);
  return m;
}

/** A row [nL] with 1 at the columns of `refs`, on top of `base`. */
function rowOf(index: Map<string, number>, n: number, refs: LoraRef[], base?: Float32Array): Float32Array {
  const row = base ? base.slice() : new Float32Array(n);
  for (const r of refs) row[index.get(refKey(r))!] = 1;
  return row;
}

export interface LoraLayout {
  rows: number;
  cols: number;
  /** The repaint's full-grid token mask (1 = repaint). */
  repaintMask?: ArrayLike<number>;
}

/** The job's LoRA feeds: factors per layer and weight tables per stream (docs/styles.md). */
export function loraRun(p: PlanLoras, entries: LoraEntry[], layout: LoraLayout): LoraRun {
  const refs = distinctLoraRefs(p);
  if (refs.length !== entries.length) throw new Error('internal error: one loaded LoRA per distinct (file, scale)');
  const index = new Map(refs.map((r, k) => [refKey(r), k]));
  const n = entries.length;
  const N = layout.rows * layout.cols;
  const global = rowOf(index, n, p.global);
  const mainImg = new Float32Array(N * n);
  for (let t = 0; t < N; t++) mainImg.set(global, t * n);
  for (const { rect, loras: refs } of p.boxes) {
    if (!refs.length) continue;
    const w = softMask(rectMask(rect, layout.rows, layout.cols), layout.rows, layout.cols);
    // A style on several boxes (or also global) takes the largest weight: it applies at most once per token.
    for (const r of refs) {
      const col = index.get(refKey(r))!;
      for (let t = 0; t < N; t++) if (w[t]! > mainImg[t * n + col]!) mainImg[t * n + col] = w[t]!;
    }
  }
  const repaint = rowOf(index, n, p.repaint, global);
  let repaintImg: Float32Array | undefined;
  if (layout.repaintMask) {
    const m = softMask(layout.repaintMask, layout.rows, layout.cols);
    repaintImg = new Float32Array(N * n);
    for (let t = 0; t < N; t++)
      for (let c = 0; c < n; c++)
        repaintImg[t * n + c] = m[t] === 1 ? repaint[c]! : m[t]! * repaint[c]! + (1 - m[t]!) * mainImg[t * n + c]!;
  }
  return {
    entries,
    layers: layerFactors(entries),
    rows: { global, boxes: p.boxes.map((b) => rowOf(index, n, b.loras, global)), repaint },
    mainImg,
    ...(repaintImg ? { repaintImg } : {}),
  };
}

/** A row [nL] repeated for `tokens` rows. */
export function repeatRow(row: Float32Array, tokens: number): Float32Array {
  const out = new Float32Array(tokens * row.length);
  for (let t = 0; t < tokens; t++) out.set(row, t * row.length);
  return out;
}
