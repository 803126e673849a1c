/**
 * The small selector inputs of a step graph, computed once per generation from the token-grid layouts that
 * src/rag computes (hard-binding rectangles, the SR cell maps with upstream's rounding, the repaint token mask).
 */
import type { TokenRect } from '../../rag/boxes.ts';
import type { CellMaps } from '../../rag/split-ratio.ts';

export interface SrSelectors {
  /** Per cell: the source tokens its crop queries, in composite order. */
  sources: BigInt64Array[];
  /** Composite token → row in the concatenated per-cell outputs. */
  place: BigInt64Array;
}

/**
 * From upstream's composite maps (cell[t] = the cell composite token t comes from, source[t] = the token of that
 * cell's stream it copies, which differs from t only where upstream's rounding correction shifts a crop).
 */
export function srSelectors(maps: CellMaps, cells: number): SrSelectors {
  const n = maps.cell.length;
  const lists: number[][] = Array.from({ length: cells }, () => []);
  const owners: number[][] = Array.from({ length: cells }, () => []);
  for (let t = 0; t < n; t++) {
    const j = maps.cell[t]!;
    if (j < 0 || j >= cells) throw new Error(`cell map: token ${t} belongs to cell ${j}, but there are ${cells} cells`);
    lists[j]!.push(maps.source[t]!);
    owners[j]!.push(t);
  }
  const place = new BigInt64Array(n);
  let row = 0;
  owners.forEach((ts) => {
    for (const t of ts) place[t] = BigInt(row++);
  });
  return { sources: lists.map((l) => BigInt64Array.from(l, BigInt)), place };
}

/** Global token indices of a box, row-major inside it (the order of the box's own packed latents). */
export function boxIndex(rect: TokenRect, gridCols: number): BigInt64Array {
  const out = new BigInt64Array((rect.r1 - rect.r0) * (rect.c1 - rect.c0));
  let i = 0;
  for (let r = rect.r0; r < rect.r1; r++) for (let c = rect.c0; c < rect.c1; c++) out[i++] = BigInt(r * gridCols + c);
  return out;
}

/** Copies box-latent rows into the global packed latents (upstream's latent paste). */
export function pasteRows(global: Float32Array, rows: Float32Array, index: BigInt64Array, width: number): void {
  index.forEach((t, i) => global.set(rows.subarray(i * width, (i + 1) * width), Number(t) * width));
}

/** Copies the rows of `from` into `into` wherever `mask[t]` equals `where` (1 = repaint token). */
export function copyRowsWhere(
  into: Float32Array,
  from: Float32Array,
  mask: Uint8Array,
  where: 0 | 1,
  width: number,
): void {
  for (let t = 0; t < mask.length; t++) {
    if (mask[t] === where) into.set(from.subarray(t * width, (t + 1) * width), t * width);
  }
}

/**
 * Copies the rows of a box-shaped stream (its latents cover the bbox, row-major) into the global packed latents
 * wherever the bbox-cropped mask is 1: the repaint pre-pass entering the repaint pass at step R.
 */
export function pasteCropWhere(
  global: Float32Array,
  crop: Float32Array,
  bbox: { n0: number; m0: number; bh: number; bw: number },
  mask: Uint8Array,
  gridCols: number,
  width: number,
): void {
  for (let r = 0; r < bbox.bh; r++) {
    for (let c = 0; c < bbox.bw; c++) {
      const k = r * bbox.bw + c;
      if (!mask[k]) continue;
      global.set(crop.subarray(k * width, (k + 1) * width), ((bbox.n0 + r) * gridCols + bbox.m0 + c) * width);
    }
  }
}
