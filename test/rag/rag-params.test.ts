import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hbBoxToTokens, hbTokenBoxes, tokensToFraction } from '../../src/rag/boxes.ts';
import { blackToTokens, dilateCross, maskToTokens, rectsToMaskPng } from '../../src/rag/mask.ts';
import {
  loadRagParamsFile,
  ragLayout,
  RagParamsError,
  resolveMaskPath,
  validateRagParams,
  type RagParams,
} from '../../src/rag/params.ts';
import { cellMaps, formatSplitRatio, isAligned, parseSplitRatio, splitRatioCells } from '../../src/rag/split-ratio.ts';
import { fixture } from '../support/fixtures.ts';
import { MASK6_CROP, MASK_CASES, OFFICIAL_MAPS, REDUX_MAPS, SPLIT_CASES, type Rect } from './vectors.ts';

const examples = (file: string) => fixture('rag-examples', file);

function cellRects(ratio: string, width: number, height: number): Rect[] {
  const grid = splitRatioCells(parseSplitRatio(ratio), width, height);
  expect(grid.problems).toEqual([]);
  return grid.cells.map((c) => [c.rows.start, c.rows.end, c.cols.start, c.cols.end]);
}

function boxRects(
  p: Pick<
    RagParams,
    | 'HB_prompt_list'
    | 'HB_m_offset_list'
    | 'HB_n_offset_list'
    | 'HB_m_scale_list'
    | 'HB_n_scale_list'
    | 'width'
    | 'height'
  >,
): Rect[] {
  return hbTokenBoxes(p).map((b) => [b.r0, b.r1, b.c0, b.c1]);
}

const base: RagParams = {
  prompt: 'a balloon above a dog',
  HB_prompt_list: ['Balloon', 'Dog'],
  HB_m_offset_list: [0.1, 0.1],
  HB_n_offset_list: [0.55, 0.05],
  HB_m_scale_list: [0.8, 0.8],
  HB_n_scale_list: [0.4, 0.45],
  HB_replace: 2,
  SR_prompt: 'a dog BREAK a balloon',
  SR_hw_split_ratio: '0.5; 0.5',
  SR_delta: 1,
  seed: 1234,
  height: 1024,
  width: 1024,
};

function problemsOf(p: unknown): string[] {
  try {
    validateRagParams(p);
  } catch (e) {
    expect(e).toBeInstanceOf(RagParamsError);
    return (e as RagParamsError).problems;
  }
  return [];
}

describe('official example files', () => {
  for (const file of ['RAG_Gallery.json', 'LoRA_Gallery.json', 'Repainting_Gallery.json']) {
    it(`${file} loads as it is`, () => {
      const list = loadRagParamsFile(examples(file));
      const raw = JSON.parse(readFileSync(examples(file), 'utf8')) as unknown[];
      expect(list).toHaveLength(raw.length);
      expect(list).toEqual(raw);
    });
  }

  it('the repaint masks named by the gallery resolve next to the file', () => {
    for (const p of loadRagParamsFile(examples('Repainting_Gallery.json'))) {
      const found = resolveMaskPath(p.Repainting_mask as string, path.dirname(examples('Repainting_Gallery.json')));
      expect(path.basename(found)).toBe(path.basename(p.Repainting_mask as string));
    }
  });
});

describe('§10.4 box and cell maps of every official example', () => {
  for (const v of OFFICIAL_MAPS) {
    it(`${v.file} idx ${v.idx}`, () => {
      const p = loadRagParamsFile(examples(v.file)).find((x) => x.idx === v.idx)!;
      expect(boxRects(p)).toEqual(v.boxes);
      expect(cellRects(p.SR_hw_split_ratio, p.width, p.height)).toEqual(v.cells);
      const layout = ragLayout(p);
      expect(layout.srSegments).toHaveLength(v.cells.length);
    });
  }
  for (const v of REDUX_MAPS) {
    it(`Redux idx ${v.idx}`, () => {
      const p = {
        HB_prompt_list: v.m.map(() => 'x'),
        HB_m_offset_list: v.m,
        HB_n_offset_list: v.n,
        HB_m_scale_list: v.ms,
        HB_n_scale_list: v.ns,
        width: 1024,
        height: 1024,
      };
      expect(boxRects(p)).toEqual(v.boxes);
      expect(cellRects(v.ratio, 1024, 1024)).toEqual(v.cells);
    });
  }
  it('spot checks: balloon/dog and the 768×1536 column splits', () => {
    expect(hbBoxToTokens({ mOffset: 0.1, nOffset: 0.55, mScale: 0.8, nScale: 0.4 }, 1024, 1024)).toEqual({
      r0: 35,
      r1: 60,
      c0: 6,
      c1: 57,
    });
    expect(cellRects('0.33, 0.34, 0.33', 1536, 768)).toEqual([
      [0, 48, 0, 31],
      [0, 48, 31, 64],
      [0, 48, 64, 96],
    ]);
    expect(cellRects('0.34, 0.33, 0.33', 1536, 768)).toEqual([
      [0, 48, 0, 32],
      [0, 48, 32, 64],
      [0, 48, 64, 96],
    ]);
  });
});

describe('§10.5 split-ratio parser', () => {
  for (const c of SPLIT_CASES) {
    it(`"${c.ratio}"`, () => {
      expect(cellRects(c.ratio, 1024, 1024)).toEqual(c.cells);
    });
  }
  it('"0.6,0.3,0.1" reproduces the float sum of Python ≤ 3.11 (last end 1.0000000000000002)', () => {
    const p = parseSplitRatio('0.6,0.3,0.1');
    expect(p.rows[0]!.cols[2]!.end).toBe(1.0000000000000002);
  });
  it('"0.1,0.2,0.3,0.4" at 768×1536', () => {
    expect(cellRects('0.1,0.2,0.3,0.4', 1536, 768).map((r) => [r[2], r[3]])).toEqual([
      [0, 9],
      [9, 28],
      [28, 57],
      [57, 96],
    ]);
  });
  it('"1" is one cell: refused with a way out', () => {
    expect(parseSplitRatio('1').cellCount).toBe(1);
    const problems = problemsOf({ ...base, SR_hw_split_ratio: '1', SR_prompt: 'one prompt' });
    expect(problems.join('\n')).toMatch(/single cell.*at least 2/);
  });
  it('"1/3" is not a number: upstream turns it into 1 with a warning; validation refuses it', () => {
    const p = parseSplitRatio('1/3');
    expect(p.warnings).toEqual(["'1/3' is not a number, converted to 1"]);
    expect(p.cellCount).toBe(1);
    expect(problemsOf({ ...base, SR_hw_split_ratio: '1/3,1', SR_prompt: 'a BREAK b' }).join('\n')).toMatch(
      /not a number/,
    );
  });
  it('whitespace and Python float spellings parse like float()', () => {
    expect(parseSplitRatio(' 1e0 , .5 ,1_0 ').warnings).toEqual([]);
    expect(parseSplitRatio(',1').warnings).toHaveLength(1);
  });
  it('the rounding correction: a last end in [0.999, 1) shifts the last crop, and breaks a multi-cell row', () => {
    // 0.1 + 0.2 + 0.3 = 0.6000000000000001, so the normalised ends add up to 0.9999999999999999.
    const p = parseSplitRatio('0.1,0.2,0.3');
    expect(p.rows[0]!.cols[2]!.end).toBe(0.9999999999999999);
    const grid = splitRatioCells(p, 1536, 768);
    // Columns are corrected with latent_h (48), not latent_w (96): sumin = 47, addin = −1.
    const last = grid.cells[2]!;
    expect(last.cols).toEqual({ start: 47, end: 95 });
    expect(last.at.cols).toEqual({ start: 48, end: 96 });
    expect(grid.problems).toEqual([]);
    expect(isAligned(grid)).toBe(false);
    const maps = cellMaps(grid);
    // Composite token (0, 48) comes from stream 2's token (0, 47).
    expect(maps.cell[48]).toBe(2);
    expect(maps.source[48]).toBe(47);
    // The same in rows: the last row's crop moves up by one token.
    const rows = splitRatioCells(parseSplitRatio('0.1;0.2;0.3'), 1024, 1024);
    expect(rows.cells[2]!.rows).toEqual({ start: 31, end: 63 });
    expect(rows.problems).toEqual([]);
    // With several cells in that last row only its last cell moves: cells of different heights, torch.cat fails.
    const broken = splitRatioCells(parseSplitRatio('0.1,1,1;0.2,1,1;0.3,1,1'), 1024, 1024);
    expect(broken.problems.join('\n')).toMatch(/different heights/);
    expect(
      problemsOf({
        ...base,
        SR_hw_split_ratio: '0.1,1,1;0.2,1,1;0.3,1,1',
        SR_prompt: 'a BREAK b BREAK c BREAK d BREAK e BREAK f',
      }).join('\n'),
    ).toMatch(/different heights/);
  });
  it('formatSplitRatio writes token counts that parse back to the same boundaries', () => {
    const text = formatSplitRatio([
      { height: 21, widths: [32, 16, 16] },
      { height: 43, widths: [64] },
    ]);
    expect(text).toBe('21,32,16,16;43');
    expect(cellRects(text, 1024, 1024)).toEqual([
      [0, 21, 0, 32],
      [0, 21, 32, 48],
      [0, 21, 48, 64],
      [21, 64, 0, 64],
    ]);
    expect(formatSplitRatio([{ height: 64, widths: [21, 43] }])).toBe('21,43');
  });
  it('cellMaps is the clean map κ for the official grids', () => {
    const grid = splitRatioCells(parseSplitRatio('1,2,1,1;2,2,1'), 1024, 1024);
    const { cell, source } = cellMaps(grid);
    expect(cell[0]).toBe(0);
    expect(cell[21 * 64 + 41]).toBe(3);
    expect(cell[21 * 64 + 42]).toBe(4);
    expect(cell[63 * 64 + 63]).toBe(4);
    expect([...source].every((s, i) => s === i)).toBe(true);
  });
});

describe('validation of what upstream does not check', () => {
  it('accepts the README quick-start example', () => {
    expect(problemsOf(base)).toEqual([]);
  });
  it('boxes outside the image', () => {
    const problems = problemsOf({ ...base, HB_m_offset_list: [0.5, 0.1], HB_m_scale_list: [0.8, 0.8] });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/box 0 \("Balloon"\) extends past the right edge/);
    expect(problemsOf({ ...base, HB_n_offset_list: [-0.1, 0.05] })[0]).toMatch(/outside \[0, 1\]/);
  });
  it('zero-token boxes', () => {
    const problems = problemsOf({ ...base, HB_m_scale_list: [0.01, 0.8] });
    expect(problems[0]).toMatch(/covers no whole token at 1024×1024/);
  });
  it('lists of different lengths', () => {
    expect(problemsOf({ ...base, HB_n_scale_list: [0.4] })[0]).toMatch(
      /HB_n_scale_list has 1 entries but HB_prompt_list has 2/,
    );
  });
  it('cell / prompt count mismatch', () => {
    expect(problemsOf({ ...base, SR_prompt: 'a dog BREAK a balloon BREAK sky' })[0]).toMatch(
      /3 BREAK-separated segments but .* makes 2 cells/,
    );
  });
  it('sizes not multiples of 16', () => {
    expect(problemsOf({ ...base, width: 1000 })[0]).toMatch(/width 1000 is not a multiple of 16 .*use 1008/);
  });
  it('grid keywords inside the SR prompt', () => {
    expect(problemsOf({ ...base, SR_prompt: 'a dog BREAK addrow balloon' })[0]).toMatch(/ADDROW/);
  });
  it('unknown and mistyped names, wrong types', () => {
    const problems = problemsOf({ ...base, HB_replce: 2 });
    expect(problems[0]).toMatch(/unknown parameter "HB_replce" \(did you mean "HB_replace"\?\)/);
    expect(problemsOf({ ...base, seed: 'abc' })[0]).toMatch(/^seed:/);
    expect(problemsOf({ ...base, SR_delta: 1.5 })[0]).toMatch(/^SR_delta:/);
  });
  it('a repaint needs all its fields and one segment per cell', () => {
    const problems = problemsOf({ ...base, Repainting_prompt: 'x', Repainting_SR_prompt: 'a' });
    expect(problems.join('\n')).toMatch(
      /missing: Repainting_mask, Repainting_HB_prompt, Repainting_HB_replace, Repainting_seed/,
    );
    expect(problems.join('\n')).toMatch(/Repainting_SR_prompt has 1 BREAK segments but SR_prompt has 2/);
  });
  it('HB_replace −1 with empty lists is plain FLUX with SR', () => {
    expect(
      problemsOf({
        ...base,
        HB_replace: -1,
        HB_prompt_list: [],
        HB_m_offset_list: [],
        HB_n_offset_list: [],
        HB_m_scale_list: [],
        HB_n_scale_list: [],
      }),
    ).toEqual([]);
  });
});

describe('tokensToFraction', () => {
  it('maps back to the exact token count through upstream arithmetic at awkward sizes', () => {
    for (const size of [256, 512, 768, 800, 1024, 1200, 1344, 1536, 80]) {
      const n = size / 16;
      if (!Number.isInteger(n)) continue;
      for (let t = 0; t <= n; t++) {
        const f = tokensToFraction(t, size);
        expect(Math.floor((f * size) / 16)).toBe(t);
        expect(f).toBeLessThanOrEqual(1);
        expect(Math.abs(f - t / n)).toBeLessThan(1e-5);
      }
    }
  });
});

/** Minimal reader for one float32 tensor of a .safetensors file (8-byte header length, JSON header, data). */
function readF32(file: string, key: string): { shape: number[]; data: Float32Array } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const t = header[key]!;
  const start = 8 + n + t.data_offsets[0];
  const bytes = buf.subarray(start, 8 + n + t.data_offsets[1]);
  return {
    shape: t.shape,
    data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
  };
}

describe('§10.6 masks → token masks', () => {
  for (const m of MASK_CASES) {
    it(m.file, async () => {
      const t = await maskToTokens(fixture('rag-examples', 'masks', m.file), 1024, 1024);
      expect(t.counts).toEqual({ blackPixels: m.black, dilatedPixels: m.dilated, repaintTokens: m.tokens });
      expect(t.bbox).toEqual({ n0: m.n0, bh: m.bh, m0: m.m0, bw: m.bw });
      if (m.file === 'mask_6.png') {
        const rows: string[] = [];
        for (let r = 0; r < t.bbox!.bh; r++)
          rows.push([...t.crop.subarray(r * t.bbox!.bw, (r + 1) * t.bbox!.bw)].map((v) => (v ? '#' : '.')).join(''));
        expect(rows).toEqual(MASK6_CROP);
      }
    });
  }
  it('the golden 128×128 mask gives the golden repainting region and offsets', async () => {
    const t = await maskToTokens(fixture('golden', 'rag_repaint_mask.png'), 128, 128);
    const golden = readF32(fixture('golden', 'rag_repaint.safetensors'), 'repainting_region');
    const offsets = (
      JSON.parse(readFileSync(fixture('golden', 'rag.json'), 'utf8')) as {
        runs: {
          rag_repaint: { repainting_offsets: { Repainting_HB_m_offset: number; Repainting_HB_n_offset: number } };
        };
      }
    ).runs.rag_repaint.repainting_offsets;
    expect(t.bbox).toMatchObject({ m0: offsets.Repainting_HB_m_offset, n0: offsets.Repainting_HB_n_offset });
    expect(golden.shape).toEqual([1, t.bbox!.bh, t.bbox!.bw]);
    expect([...t.crop]).toEqual([...golden.data]);
  });
  it('dilation is a city-block ball of radius 10 clipped to the image', () => {
    const w = 41,
      h = 30;
    const black = new Uint8Array(w * h);
    black[5 * w + 20] = 1;
    const grown = dilateCross(black, w, h);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) expect(grown[y * w + x]).toBe(Math.abs(x - 20) + Math.abs(y - 5) <= 10 ? 1 : 0);
  });
  it('a mask of another size is resized (nearest) and a mask with nothing black has no box', () => {
    const black = new Uint8Array(64 * 64);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) black[y * 64 + x] = 1;
    const t = blackToTokens(black, 64, 64, 128, 128);
    // 16 px black + 10 px growth = 26 px at 64², 52 px at 128²: token centres 8, 24, 40.
    expect(t.bbox).toEqual({ n0: 0, bh: 3, m0: 0, bw: 3 });
    expect(blackToTokens(new Uint8Array(64 * 64), 64, 64, 64, 64).bbox).toBeNull();
  });
  it('rectsToMaskPng writes black = repaint that reads back to the same tokens', async () => {
    const png = await rectsToMaskPng([{ x: 48, y: 32, w: 32, h: 16 }], 128, 128);
    const t = await maskToTokens(png, 128, 128);
    // 32×16 px black + 10 px of growth: tokens whose centres lie in x ∈ [38, 89], y ∈ [22, 57].
    expect(t.bbox).toEqual({ n0: 1, bh: 3, m0: 2, bw: 4 });
  });
  it('an unreadable mask is a clear error', async () => {
    await expect(maskToTokens(Buffer.from('not a png'), 64, 64)).rejects.toThrow(/cannot read the repainting mask/);
  });
});
