/**
 * RAG's soft-refinement grid: the `SR_hw_split_ratio` grammar (Regional-Prompter syntax, upstream `matrix.py`)
 * and the cell → token-rectangle arithmetic of upstream `cross_attention.py`, replicated operation for
 * operation in IEEE doubles (RAG-SPEC.md §3.3) so that every cell lands on the same tokens as upstream.
 *
 * Grammar: without `;` the numbers are the column widths of one full-height row; with `;` each group is a
 * row, top to bottom, whose first number is the row height and whose remaining numbers (if any) are its
 * column widths. Weights are normalised per row. Cells are numbered row-major and cell j takes the j-th
 * `BREAK` segment of `SR_prompt`.
 */

/** One `[start, end)` range in fractions of the image, exactly as upstream computes it. */
export interface RatioRange {
  start: number;
  end: number;
}

export interface SplitRow extends RatioRange {
  cols: RatioRange[];
}

export interface ParsedSplitRatio {
  text: string;
  /** True when the text has `;` (rows given explicitly). */
  twoD: boolean;
  rows: SplitRow[];
  cellCount: number;
  /** Upstream prints these and carries on with 1.0; validation turns them into errors. */
  warnings: string[];
}

/** Half-open token interval. */
export interface TokenSpan {
  start: number;
  end: number;
}

export interface SplitCell {
  /** Row-major cell index = BREAK-segment index. */
  index: number;
  row: number;
  col: number;
  /** Tokens upstream crops from this cell's stream (after its rounding corrections). */
  rows: TokenSpan;
  cols: TokenSpan;
  /** Where the crop lands in the composite (crops are concatenated, so this can differ from the crop). */
  at: { rows: TokenSpan; cols: TokenSpan };
}

export interface SplitGrid {
  /** Token grid size: H/16 × W/16. */
  gridRows: number;
  gridCols: number;
  cells: SplitCell[];
  /** Problems that make upstream's torch.cat/reshape fail or leave a cell without tokens. */
  problems: string[];
}

const ROW_SEP = ';';
const COL_SEP = ',';

// Python's float(): surrounding whitespace allowed, digits with optional `_` separators, an exponent,
// and the words inf/infinity/nan. Anything else is a ValueError, which upstream maps to 1.0.
const PY_FLOAT = /^[+-]?(?:(?:\d(?:_?\d)*)(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;
const PY_SPECIAL = /^[+-]?(?:inf|infinity|nan)$/i;

function pyFloat(raw: string, fallback: number, warnings: string[]): number {
  const s = raw.trim();
  if (PY_FLOAT.test(s)) return Number(s.replace(/_/g, ''));
  if (PY_SPECIAL.test(s)) {
    const neg = s.startsWith('-');
    if (/nan/i.test(s)) return NaN;
    return neg ? -Infinity : Infinity;
  }
  warnings.push(`'${raw}' is not a number, converted to ${fallback}`);
  return fallback;
}

// Python's built-in sum() over a list of floats, as in Python ≤ 3.11 (plain left-to-right addition; 3.12
// switched to compensated summation, which would change "0.6,0.3,0.1"). The spec's vectors are from 3.11.
function pySum(values: number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s;
}

/** list_percentify → list_cumsum → list_rangify of matrix.py, for one list of weights. */
function toRanges(weights: number[]): RatioRange[] {
  const total = pySum(weights);
  const norm = weights.map((v) => v / total);
  for (let i = 1; i < norm.length; i++) norm[i] = norm[i]! + norm[i - 1]!;
  const out: RatioRange[] = [];
  let prev = 0;
  for (const end of norm) {
    out.push({ start: prev, end });
    prev = end;
  }
  return out;
}

/**
 * Parses `SR_hw_split_ratio` the way upstream does (keyconverter + matrixdealer with a prompt that has exactly
 * one BREAK per cell boundary). Non-numeric entries become 1.0 and are reported in `warnings`.
 */
export function parseSplitRatio(text: string): ParsedSplitRatio {
  const warnings: string[] = [];
  const twoD = text.includes(ROW_SEP);
  let rowWeights: number[];
  let colWeights: number[][];
  if (!twoD) {
    rowWeights = [1];
    colWeights = [text.split(COL_SEP).map((x) => pyFloat(x, 1, warnings))];
  } else {
    const groups = text.split(ROW_SEP).map((g) => g.split(COL_SEP).map((x) => pyFloat(x, 1, warnings)));
    rowWeights = groups.map((g) => g[0]!);
    // A group with one number is a single full-width cell whose weight is that number (normalised to 1).
    colWeights = groups.map((g) => (g.length > 1 ? g.slice(1) : g));
  }
  const rowRanges = toRanges(rowWeights);
  const rows: SplitRow[] = rowRanges.map((r, i) => ({ ...r, cols: toRanges(colWeights[i]!) }));
  return { text, twoD, rows, cellCount: rows.reduce((n, r) => n + r.cols.length, 0), warnings };
}

/** Python's `int()` on a finite float: truncation toward zero. */
function pyInt(v: number): number {
  return Math.trunc(v);
}

/** Python slice bounds `[a:b]` on an axis of length n, normalised to a half-open span inside [0, n]. */
function pySlice(a: number, b: number, n: number): TokenSpan {
  const norm = (i: number) => {
    let j = i < 0 ? i + n : i;
    if (j < 0) j = 0;
    if (j > n) j = n;
    return j;
  };
  const start = norm(a);
  const end = norm(b);
  return { start, end: Math.max(start, end) };
}

/**
 * The token rectangles of every cell at a given image size, with upstream's rounding corrections: the column
 * correction uses the *height* in tokens and the row correction the *width* (`latent_in = latent_h`,
 * `latent_out = latent_w` in cross_attention.py, sic). The corrections only fire when a cumulative end lands
 * in [0.999, 1) (or a middle cell ends ≥ 0.999); then the last crop of a row is shifted, and a non-zero row
 * correction makes upstream's torch.cat fail. Both are reported in `problems`.
 */
export function splitRatioCells(parsed: ParsedSplitRatio, width: number, height: number): SplitGrid {
  const gridRows = height / 16;
  const gridCols = width / 16;
  const latentH = gridRows;
  const latentW = gridCols;
  const latentOut = latentW;
  const latentIn = latentH;
  const problems: string[] = [];
  const cells: SplitCell[] = [];
  let sumout = 0;
  let index = 0;
  let atRow = 0;
  parsed.rows.forEach((row, r) => {
    let sumin = 0;
    let atCol = 0;
    let rowHeight: number | undefined;
    row.cols.forEach((cell, c) => {
      let addout = 0;
      let addin = 0;
      sumin = sumin + pyInt(latentIn * cell.end) - pyInt(latentIn * cell.start);
      if (cell.end >= 0.999) {
        addin = sumin - latentIn;
        sumout = sumout + pyInt(latentOut * row.end) - pyInt(latentOut * row.start);
        if (row.end >= 0.999) addout = sumout - latentOut;
      }
      const rows = pySlice(pyInt(latentH * row.start) + addout, pyInt(latentH * row.end), latentH);
      const cols = pySlice(pyInt(latentW * cell.start) + addin, pyInt(latentW * cell.end), latentW);
      const h = rows.end - rows.start;
      const w = cols.end - cols.start;
      if (h === 0 || w === 0)
        problems.push(
          `cell ${index} (row ${r + 1}, column ${c + 1}) covers no tokens at ${width}×${height}: give it a larger share`,
        );
      if (rowHeight === undefined) rowHeight = h;
      else if (h !== rowHeight)
        problems.push(
          `row ${r + 1}: the rounding correction gives its cells different heights (${rowHeight} and ${h} tokens), which upstream cannot concatenate`,
        );
      cells.push({
        index,
        row: r,
        col: c,
        rows,
        cols,
        at: { rows: { start: atRow, end: atRow + h }, cols: { start: atCol, end: atCol + w } },
      });
      atCol += w;
      index++;
    });
    if (atCol !== gridCols)
      problems.push(`row ${r + 1}: its cells cover ${atCol} token columns instead of ${gridCols}`);
    atRow += rowHeight ?? 0;
  });
  if (atRow !== gridRows) problems.push(`the rows cover ${atRow} token rows instead of ${gridRows}`);
  return { gridRows, gridCols, cells, problems };
}

/** True when every crop sits where it lands in the composite (no rounding shift): the clean map κ applies. */
export function isAligned(grid: SplitGrid): boolean {
  return grid.cells.every(
    (c) =>
      c.rows.start === c.at.rows.start &&
      c.rows.end === c.at.rows.end &&
      c.cols.start === c.at.cols.start &&
      c.cols.end === c.at.cols.end,
  );
}

export interface CellMaps {
  /** For each composite token (row-major, gridRows × gridCols): the cell (= SR stream) it comes from. */
  cell: Int32Array;
  /** For each composite token: the token index inside that cell's stream it is copied from. */
  source: Int32Array;
}

/**
 * Token → cell map κ and the source-token map of the composite, as upstream assembles it. Throws when the
 * grid is not a clean tiling (see `problems`), because upstream itself would fail there.
 */
export function cellMaps(grid: SplitGrid): CellMaps {
  if (grid.problems.length)
    throw new Error(`the split ratio does not tile the token grid:\n- ${grid.problems.join('\n- ')}`);
  const n = grid.gridRows * grid.gridCols;
  const cell = new Int32Array(n).fill(-1);
  const source = new Int32Array(n).fill(-1);
  for (const c of grid.cells) {
    for (let r = c.at.rows.start; r < c.at.rows.end; r++) {
      const sr = c.rows.start + (r - c.at.rows.start);
      for (let k = c.at.cols.start; k < c.at.cols.end; k++) {
        const sk = c.cols.start + (k - c.at.cols.start);
        cell[r * grid.gridCols + k] = c.index;
        source[r * grid.gridCols + k] = sr * grid.gridCols + sk;
      }
    }
  }
  return { cell, source };
}

/** `SR_prompt.split("BREAK")`: exact, case-sensitive, segments not trimmed (as upstream encodes them). */
export function splitBreaks(srPrompt: string): string[] {
  return srPrompt.split('BREAK');
}

/** Words upstream's parser reacts to inside SR prompts (case-insensitive); they change the cell structure. */
export const RESERVED_SR_WORDS = ['ADDCOL', 'ADDROW', 'ADDBASE', 'ADDCOMM'] as const;

/**
 * Writes a split ratio that upstream parses back into exactly these token boundaries. Weights are token counts,
 * so normalisation and cumulation reproduce the intended ends; the result is verified by parsing it back.
 * `rows[i].height` and `rows[i].widths` are in tokens and must add up to the grid.
 */
export function formatSplitRatio(rows: { height: number; widths: number[] }[]): string {
  if (rows.length === 1) return rows[0]!.widths.join(',');
  return rows.map((r) => (r.widths.length === 1 ? `${r.height}` : `${r.height},${r.widths.join(',')}`)).join(';');
}
