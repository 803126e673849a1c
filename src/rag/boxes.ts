/**
 * Hard-binding boxes: fractions of the image (RAG-SPEC.md §2.1) → half-open token rectangles, with the checks
 * upstream leaves out (it crashes on a box past the edge and silently makes a 0-token region for a tiny one).
 */

/** One hard-binding box in upstream's terms: m = horizontal (x, width), n = vertical (y, height). */
export interface HbBox {
  mOffset: number;
  nOffset: number;
  mScale: number;
  nScale: number;
}

/** Token rectangle: rows [r0, r1) × cols [c0, c1) of the (H/16) × (W/16) grid. */
export interface TokenRect {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
}

export const TOKEN = 16;

/**
 * Upstream: `m_off = int(HB_m_offset * W // 16)`, `m = int(HB_m_scale * W // 16)` and likewise for n with H.
 * Dividing a double by 16 is exact, so Math.floor(a * W / 16) reproduces Python's floor division bit for bit.
 */
export function hbBoxToTokens(box: HbBox, width: number, height: number): TokenRect {
  const c0 = Math.floor((box.mOffset * width) / TOKEN);
  const r0 = Math.floor((box.nOffset * height) / TOKEN);
  const m = Math.floor((box.mScale * width) / TOKEN);
  const n = Math.floor((box.nScale * height) / TOKEN);
  return { r0, r1: r0 + n, c0, c1: c0 + m };
}

export interface HbLists {
  HB_prompt_list: string[];
  HB_m_offset_list: number[];
  HB_n_offset_list: number[];
  HB_m_scale_list: number[];
  HB_n_scale_list: number[];
}

export function hbBoxes(p: HbLists): HbBox[] {
  return p.HB_m_offset_list.map((mOffset, k) => ({
    mOffset,
    nOffset: p.HB_n_offset_list[k]!,
    mScale: p.HB_m_scale_list[k]!,
    nScale: p.HB_n_scale_list[k]!,
  }));
}

export function hbTokenBoxes(p: HbLists & { width: number; height: number }): TokenRect[] {
  return hbBoxes(p).map((b) => hbBoxToTokens(b, p.width, p.height));
}

// Fractions written at 6 decimals may exceed the edge by a rounding step; the token check below is what bites.
const EPS = 1e-5;

/** Everything wrong with the hard-binding lists, as sentences that say what to change. */
export function hbProblems(p: HbLists & { width: number; height: number }): string[] {
  const out: string[] = [];
  const n = p.HB_prompt_list.length;
  const lists = ['HB_m_offset_list', 'HB_n_offset_list', 'HB_m_scale_list', 'HB_n_scale_list'] as const;
  for (const name of lists) {
    if (p[name].length !== n)
      out.push(
        `${name} has ${p[name].length} entries but HB_prompt_list has ${n}: give one value per hard-binding prompt`,
      );
  }
  if (out.length) return out;
  const rows = p.height / TOKEN;
  const cols = p.width / TOKEN;
  hbBoxes(p).forEach((b, k) => {
    const who = `hard-binding box ${k} ("${short(p.HB_prompt_list[k]!)}")`;
    const before = out.length;
    for (const [name, v] of [
      ['HB_m_offset_list', b.mOffset],
      ['HB_n_offset_list', b.nOffset],
    ] as const) {
      if (v < 0 || v > 1)
        out.push(
          `${who}: ${name}[${k}] = ${v} is outside [0, 1] (offsets are fractions of the image, 0 = left/top edge)`,
        );
    }
    for (const [name, v] of [
      ['HB_m_scale_list', b.mScale],
      ['HB_n_scale_list', b.nScale],
    ] as const) {
      if (v <= 0 || v > 1)
        out.push(
          `${who}: ${name}[${k}] = ${v} must be in (0, 1] (a fraction of the image ${name.startsWith('HB_m') ? 'width' : 'height'})`,
        );
    }
    if (b.mOffset + b.mScale > 1 + EPS)
      out.push(`${who} extends past the right edge (m_offset + m_scale = ${round(b.mOffset + b.mScale)} > 1)`);
    if (b.nOffset + b.nScale > 1 + EPS)
      out.push(`${who} extends past the bottom edge (n_offset + n_scale = ${round(b.nOffset + b.nScale)} > 1)`);
    if (out.length > before) return;
    const t = hbBoxToTokens(b, p.width, p.height);
    if (t.c1 - t.c0 < 1 || t.r1 - t.r0 < 1) {
      out.push(
        `${who} covers no whole token at ${p.width}×${p.height} (${t.r1 - t.r0}×${t.c1 - t.c0} tokens of 16 px): make it at least ${round(TOKEN / p.width)} wide and ${round(TOKEN / p.height)} high`,
      );
    }
    if (t.c1 > cols || t.r1 > rows)
      out.push(
        `${who} ends outside the ${rows}×${cols} token grid (rows [${t.r0},${t.r1}) cols [${t.c0},${t.c1})): shrink it`,
      );
  });
  return out;
}

function short(s: string): string {
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function round(v: number): number {
  return Math.round(v * 10000) / 10000;
}

/**
 * A fraction that upstream's `int(f * size // 16)` maps back to exactly `tokens`, written as a short decimal.
 * `tokens / (size / 16)` itself can land a hair below the integer (e.g. 1/96 · 96 ≠ 1 in doubles), so the
 * value is rounded *up* at 6 decimals when plain rounding would map one token short.
 */
export function tokensToFraction(tokens: number, size: number): number {
  const n = size / TOKEN;
  let f = Math.round((tokens / n) * 1e6) / 1e6;
  // Step up one millionth at a time: at most a few steps, and never past the next token (n < 10⁶).
  for (let i = 0; i < 4 && Math.floor((f * size) / TOKEN) < tokens; i++) f = Math.round(f * 1e6 + 1) / 1e6;
  if (Math.floor((f * size) / TOKEN) !== tokens || f > 1)
    throw new Error(`no fraction maps to ${tokens} tokens at size ${size}`);
  return f;
}
