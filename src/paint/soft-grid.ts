/**
 * The soft-refinement grid of a Scene, on the 16-px token grid: a partition of the image into ≥ 2 cells
 * derived from the regions' geometry. Regions whose vertical extents overlap by at least half of the shorter one
 * share a row band; inside a band, regions whose horizontal extents overlap by half of the narrower one share a
 * cell. Bands and cells meet halfway between neighbours; a gap of a quarter of the image or more becomes a cell
 * of its own that carries the background prompt. A region belongs to every cell that holds 40 % of its area (at
 * least to the one holding most of it); a cell's BREAK segment is its regions' prompts, or the background.
 */
import {
  formatSplitRatio,
  parseSplitRatio,
  RESERVED_SR_WORDS,
  splitRatioCells,
  type SplitGrid,
} from '../rag/split-ratio.ts';
import { snapBox } from '../scene/normalize.ts';
import { TOKEN_PX, type Box, type Scene } from '../scene/schema.ts';

// ---------------------------------------------------------------------------------------------------------
// Geometry on the token grid

/** Half-open token rectangle: rows [r0, r1) × cols [c0, c1). */
export interface TokenRect {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
}

export function boxToTokens(box: Box, width: number, height: number): TokenRect {
  const b = snapBox(box, width, height);
  const rows = height / TOKEN_PX;
  const cols = width / TOKEN_PX;
  const r0 = Math.round(b.y * rows);
  const c0 = Math.round(b.x * cols);
  return { r0, r1: r0 + Math.max(1, Math.round(b.h * rows)), c0, c1: c0 + Math.max(1, Math.round(b.w * cols)) };
}

function area(r: TokenRect): number {
  return Math.max(0, r.r1 - r.r0) * Math.max(0, r.c1 - r.c0);
}

function intersection(a: TokenRect, b: TokenRect): number {
  const h = Math.min(a.r1, b.r1) - Math.max(a.r0, b.r0);
  const w = Math.min(a.c1, b.c1) - Math.max(a.c0, b.c0);
  return h > 0 && w > 0 ? h * w : 0;
}

interface Span {
  lo: number;
  hi: number;
}

/** Groups items whose spans overlap by at least half of the shorter span (single linkage). */
function clusterSpans(spans: Span[]): number[][] {
  const parent = spans.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  for (let i = 0; i < spans.length; i++) {
    for (let j = i + 1; j < spans.length; j++) {
      const a = spans[i]!,
        b = spans[j]!;
      const ov = Math.min(a.hi, b.hi) - Math.max(a.lo, b.lo);
      if (ov > 0 && ov >= 0.5 * Math.min(a.hi - a.lo, b.hi - b.lo)) parent[find(i)] = find(j);
    }
  }
  const groups = new Map<number, number[]>();
  spans.forEach((_, i) => {
    const root = find(i);
    groups.set(root, [...(groups.get(root) ?? []), i]);
  });
  const span = (g: number[]): Span => ({
    lo: Math.min(...g.map((i) => spans[i]!.lo)),
    hi: Math.max(...g.map((i) => spans[i]!.hi)),
  });
  return [...groups.values()].sort((a, b) => {
    const sa = span(a),
      sb = span(b);
    return sa.lo + sa.hi - (sb.lo + sb.hi) || sa.lo - sb.lo;
  });
}

/**
 * Where to cut between two neighbouring clusters: the position in [from, to] that minimises the largest share
 * any member loses to the other side (ties: nearest the middle), so crowded rows still keep each box mostly
 * in its own band.
 */
function bestCut(spans: Span[], before: number[], after: number[], from: number, to: number): number {
  const mid = (from + to) / 2;
  let best = Math.round(mid),
    bestLoss = Infinity;
  for (let c = from; c <= Math.max(from, to); c++) {
    let loss = 0;
    for (const i of before) loss = Math.max(loss, Math.max(0, spans[i]!.hi - c) / (spans[i]!.hi - spans[i]!.lo));
    for (const i of after) loss = Math.max(loss, Math.max(0, c - spans[i]!.lo) / (spans[i]!.hi - spans[i]!.lo));
    if (loss < bestLoss - 1e-12 || (Math.abs(loss - bestLoss) <= 1e-12 && Math.abs(c - mid) < Math.abs(best - mid)))
      [best, bestLoss] = [c, loss];
  }
  return best;
}

interface Band {
  lo: number;
  hi: number;
  /** Item indices in this band; empty = background. */
  members: number[];
}

/**
 * Cuts [0, length) into bands, one per cluster, meeting halfway between neighbouring clusters; a gap of at
 * least `minGap` becomes a background band. Every band keeps at least one token.
 */
function partition(spans: Span[], clusters: number[][], length: number, minGap: number): Band[] {
  const ext = clusters.map((g) => ({
    lo: Math.min(...g.map((i) => spans[i]!.lo)),
    hi: Math.max(...g.map((i) => spans[i]!.hi)),
    g,
  }));
  const bands: Band[] = [];
  if (!ext.length) return [{ lo: 0, hi: length, members: [] }];
  let start = 0;
  ext.forEach((e, k) => {
    if (k === 0) {
      if (e.lo >= minGap) {
        bands.push({ lo: 0, hi: e.lo, members: [] });
        start = e.lo;
      }
    } else {
      const prev = ext[k - 1]!;
      const last = bands[bands.length - 1]!;
      if (e.lo - prev.hi >= minGap) {
        last.hi = prev.hi;
        bands.push({ lo: prev.hi, hi: e.lo, members: [] });
        start = e.lo;
      } else {
        const cut = bestCut(
          spans,
          prev.g,
          e.g,
          Math.max(last.lo + 1, Math.min(prev.hi, e.lo)),
          Math.max(prev.hi, e.lo),
        );
        last.hi = cut;
        start = cut;
      }
    }
    bands.push({ lo: start, hi: length, members: [...e.g] });
  });
  const lastExt = ext[ext.length - 1]!;
  const last = bands[bands.length - 1]!;
  if (length - lastExt.hi >= minGap && lastExt.hi > last.lo) {
    last.hi = lastExt.hi;
    bands.push({ lo: lastExt.hi, hi: length, members: [] });
  }
  // Squeezed bands (crowded clusters) fold into their neighbour instead of becoming empty.
  const out: Band[] = [];
  for (const b of bands) {
    const prev = out[out.length - 1];
    if (b.hi <= b.lo || (prev && b.lo < prev.hi)) {
      if (prev) {
        prev.hi = Math.max(prev.hi, b.hi);
        prev.members.push(...b.members);
      }
      continue;
    }
    out.push({ ...b, members: [...b.members] });
  }
  out[out.length - 1]!.hi = length;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Soft-refinement grid

export interface SoftCell {
  index: number;
  rect: TokenRect;
  /** Regions whose prompt this cell carries, in scene order; empty = background. */
  regionIds: string[];
  prompt: string;
}

export interface SoftGrid {
  ratio: string;
  gridRows: number;
  gridCols: number;
  cells: SoftCell[];
}

const GAP_FRACTION = 0.25;

/** A prompt that upstream splits and parses as written: no stray BREAK, no grid keywords. */
export function sanitizeSrPrompt(text: string): string {
  let out = text.replace(/BREAK/g, 'break');
  for (const w of RESERVED_SR_WORDS) out = out.replace(new RegExp(w, 'gi'), ' ');
  return out.replace(/\s+/g, ' ').trim();
}

function intendedRows(scene: Scene): { height: number; widths: number[] }[] {
  const rows = scene.height / TOKEN_PX;
  const cols = scene.width / TOKEN_PX;
  const rects = scene.regions.map((r) => boxToTokens(r.box, scene.width, scene.height));
  const vSpans = rects.map((r) => ({ lo: r.r0, hi: r.r1 }));
  const rowBands = partition(vSpans, clusterSpans(vSpans), rows, Math.max(2, Math.round(rows * GAP_FRACTION)));
  const out = rowBands.map((band) => {
    if (!band.members.length) return { height: band.hi - band.lo, widths: [cols] };
    const members = band.members;
    const hSpans = members.map((i) => ({ lo: rects[i]!.c0, hi: rects[i]!.c1 }));
    const colBands = partition(hSpans, clusterSpans(hSpans), cols, Math.max(2, Math.round(cols * GAP_FRACTION)));
    return { height: band.hi - band.lo, widths: colBands.map((c) => c.hi - c.lo) };
  });
  const cellCount = out.reduce((n, r) => n + r.widths.length, 0);
  if (cellCount >= 2) return out;
  // One cell would crash upstream: cut at the widest margin around the regions, or in half.
  const union = rects.length
    ? {
        r0: Math.min(...rects.map((r) => r.r0)),
        r1: Math.max(...rects.map((r) => r.r1)),
        c0: Math.min(...rects.map((r) => r.c0)),
        c1: Math.max(...rects.map((r) => r.c1)),
      }
    : { r0: 0, r1: rows, c0: 0, c1: cols };
  const margins = [
    { side: 'left', size: union.c0 },
    { side: 'right', size: cols - union.c1 },
    { side: 'top', size: union.r0 },
    { side: 'bottom', size: rows - union.r1 },
  ].sort((a, b) => b.size - a.size);
  const m = margins[0]!;
  if (m.size >= 1) {
    if (m.side === 'left') return [{ height: rows, widths: [union.c0, cols - union.c0] }];
    if (m.side === 'right') return [{ height: rows, widths: [union.c1, cols - union.c1] }];
    if (m.side === 'top')
      return [
        { height: union.r0, widths: [cols] },
        { height: rows - union.r0, widths: [cols] },
      ];
    return [
      { height: union.r1, widths: [cols] },
      { height: rows - union.r1, widths: [cols] },
    ];
  }
  if (cols >= rows) return [{ height: rows, widths: [Math.floor(cols / 2), cols - Math.floor(cols / 2)] }];
  return [
    { height: Math.floor(rows / 2), widths: [cols] },
    { height: rows - Math.floor(rows / 2), widths: [cols] },
  ];
}

function sameSpans(grid: SplitGrid, rows: { height: number; widths: number[] }[]): boolean {
  let k = 0,
    r0 = 0;
  for (const row of rows) {
    let c0 = 0;
    for (const w of row.widths) {
      const c = grid.cells[k++];
      if (!c || c.rows.start !== r0 || c.rows.end !== r0 + row.height || c.cols.start !== c0 || c.cols.end !== c0 + w)
        return false;
      if (c.at.rows.start !== c.rows.start || c.at.cols.start !== c.cols.start) return false;
      c0 += w;
    }
    r0 += row.height;
  }
  return k === grid.cells.length;
}

/**
 * The ratio string for these token rows. Token counts usually normalise to exactly the intended boundaries;
 * when double rounding lands an end just under 1 (upstream then shifts a crop), scaled weights are tried.
 */
function writeRatio(
  rows: { height: number; widths: number[] }[],
  width: number,
  height: number,
): { ratio: string; grid: SplitGrid } {
  let fallback: { ratio: string; grid: SplitGrid } | undefined;
  for (let k = 1; k <= 12; k++) {
    const ratio = formatSplitRatio(rows.map((r) => ({ height: r.height * k, widths: r.widths.map((w) => w * k) })));
    const grid = splitRatioCells(parseSplitRatio(ratio), width, height);
    if (!grid.problems.length && sameSpans(grid, rows)) return { ratio, grid };
    if (!grid.problems.length && !fallback) fallback = { ratio, grid };
  }
  if (fallback) return fallback;
  // Never reached in practice: equal halves always parse cleanly.
  const ratio = '1,1';
  return { ratio, grid: splitRatioCells(parseSplitRatio(ratio), width, height) };
}

/** Which regions each cell carries (≥ 40 % of a region's area, and always the cell holding most of it). */
function assignRegions(scene: Scene, cellRects: TokenRect[]): string[][] {
  const out: string[][] = cellRects.map(() => []);
  for (const r of scene.regions) {
    const rect = boxToTokens(r.box, scene.width, scene.height);
    const a = area(rect);
    let best = 0,
      bestOv = -1;
    const chosen = new Set<number>();
    cellRects.forEach((c, i) => {
      const ov = intersection(rect, c);
      if (ov > bestOv) [best, bestOv] = [i, ov];
      if (a > 0 && ov >= 0.4 * a) chosen.add(i);
    });
    chosen.add(best);
    for (const i of chosen) out[i]!.push(r.id);
  }
  return out;
}

function cellPrompt(scene: Scene, ids: string[]): string {
  const byId = new Map(scene.regions.map((r) => [r.id, r] as const));
  const text = ids.length ? ids.map((id) => byId.get(id)!.prompt).join('; ') : scene.background.trim() || scene.prompt;
  return sanitizeSrPrompt(text) || 'background';
}

function gridFrom(scene: Scene, grid: SplitGrid, ratio: string): SoftGrid {
  const rects = grid.cells.map((c) => ({
    r0: c.at.rows.start,
    r1: c.at.rows.end,
    c0: c.at.cols.start,
    c1: c.at.cols.end,
  }));
  const members = assignRegions(scene, rects);
  return {
    ratio,
    gridRows: grid.gridRows,
    gridCols: grid.gridCols,
    cells: rects.map((rect, index) => ({
      index,
      rect,
      regionIds: members[index]!,
      prompt: cellPrompt(scene, members[index]!),
    })),
  };
}

/** The soft-refinement grid of a scene: the split ratio, each cell's token rectangle, regions and prompt. */
export function deriveSoftGrid(scene: Scene): SoftGrid {
  const rows = intendedRows(scene);
  const { ratio, grid } = writeRatio(rows, scene.width, scene.height);
  return gridFrom(scene, grid, ratio);
}

/** The cells of an existing split ratio filled with another scene's regions (a repaint keeps the grid). */
export function fillSoftGrid(scene: Scene, ratio: string): SoftGrid {
  const grid = splitRatioCells(parseSplitRatio(ratio), scene.width, scene.height);
  if (grid.problems.length)
    throw new Error(`split ratio "${ratio}" does not fit ${scene.width}×${scene.height}: ${grid.problems.join('; ')}`);
  return gridFrom(scene, grid, ratio);
}
