/**
 * RAG parameters with the official names and meanings (RAG-SPEC.md §5.1), so that the official example files
 * (`RAG_Gallery.json`, `LoRA_Gallery.json`, `Repainting_Gallery.json`) load as they are. The zod schema checks
 * the shape; `validateRagParams` adds what upstream never checks (boxes outside the image, zero-token boxes,
 * cells vs BREAK segments, a single cell, sizes off the 16-px grid, rounding that breaks the cell tiling).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { hbProblems, hbTokenBoxes, type TokenRect } from './boxes.ts';
import {
  cellMaps,
  parseSplitRatio,
  RESERVED_SR_WORDS,
  splitBreaks,
  splitRatioCells,
  type CellMaps,
  type ParsedSplitRatio,
  type SplitGrid,
} from './split-ratio.ts';

const fraction = z.number().finite();

/** A mask is a PNG path (relative to the params file when loaded from one) or the PNG bytes. */
const MaskSource = z.union([
  z.string().min(1),
  z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'must be a PNG path or the PNG bytes'),
]);

/** Limits of one paint pass's styles (the step graph's LoRA inputs are sized by them; RAG-SPEC has no LoRA). */
export const LORA_LIMITS = { maxLoras: 8, maxRank: 128, minScale: -4, maxScale: 4 } as const;

/**
 * A style (LoRA) of a pass: `name` is a `.safetensors` path or a style name in LORA_DIR (the worker resolves
 * names to paths before the engine sees them); `sha256` pins the exact file once known (stored with a generation).
 */
export const LoraRefSchema = z.strictObject({
  name: z.string().min(1),
  scale: z.number().finite().min(LORA_LIMITS.minScale).max(LORA_LIMITS.maxScale),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256')
    .optional(),
});
export type LoraRef = z.infer<typeof LoraRefSchema>;

export const RagParamsSchema = z.strictObject({
  /** Index inside an official gallery file; carried, never used. */
  idx: z.number().int().optional(),
  prompt: z.string(),
  /** T5 prompt override (diffusers' prompt_2); defaults to `prompt`. */
  prompt_2: z.string().optional(),
  HB_prompt_list: z.array(z.string()),
  HB_m_offset_list: z.array(fraction),
  HB_n_offset_list: z.array(fraction),
  HB_m_scale_list: z.array(fraction),
  HB_n_scale_list: z.array(fraction),
  /** Number of hard-bound steps r; −1 turns hard binding off. */
  HB_replace: z.number().int().min(-1),
  SR_prompt: z.string(),
  SR_hw_split_ratio: z.string(),
  SR_delta: z.number().finite().min(0).max(1),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** Unset = the model's default (models/*.json). */
  num_inference_steps: z.number().int().min(1).max(1000).optional(),
  guidance_scale: z.number().finite().min(0).max(100).optional(),
  max_sequence_length: z.number().int().min(1).max(512).optional(),
  height: z.number().int().positive(),
  width: z.number().int().positive(),
  Repainting_mask: MaskSource.optional(),
  Repainting_prompt: z.string().optional(),
  Repainting_SR_prompt: z.string().optional(),
  Repainting_HB_prompt: z.string().optional(),
  Repainting_HB_replace: z.number().int().min(0).optional(),
  Repainting_seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  Repainting_single: z.union([z.literal(0), z.literal(1), z.boolean()]).optional(),
  /** Our extension: global styles, applied to every stream (main, hard-binding boxes, repaint). */
  loras: z.array(LoraRefSchema).optional(),
  /** Our extension: each hard-binding box's styles, parallel to HB_prompt_list (docs/styles.md has the semantics). */
  HB_lora_list: z.array(z.array(LoraRefSchema)).optional(),
  /** Our extension: the repainted region's styles (its pre-pass stream, and the repaint pass inside the mask). */
  Repainting_loras: z.array(LoraRefSchema).optional(),
});

export type RagParams = z.infer<typeof RagParamsSchema>;

/** The repainting fields; all present or none. */
export const REPAINT_KEYS = [
  'Repainting_mask',
  'Repainting_prompt',
  'Repainting_SR_prompt',
  'Repainting_HB_prompt',
  'Repainting_HB_replace',
  'Repainting_seed',
] as const;

export class RagParamsError extends Error {
  constructor(
    readonly problems: string[],
    where?: string,
  ) {
    const head = where ? `${where}: ` : '';
    super(
      problems.length === 1
        ? `${head}${problems[0]}`
        : `${head}the RAG parameters have ${problems.length} problems:\n${problems.map((p) => `- ${p}`).join('\n')}`,
    );
    this.name = 'RagParamsError';
  }
}

const KNOWN_KEYS = Object.keys(RagParamsSchema.shape);

function distance(a: string, b: string): number {
  const m = a.length,
    n = b.length;
  const d = Array.from({ length: m + 1 }, (_, i) => [i, ...new Array<number>(n).fill(0)]);
  for (let j = 1; j <= n; j++) d[0]![j] = j;
  for (let i = 1; i <= m; i++)
    for (let j = 1; j <= n; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  return d[m]![n]!;
}

function suggest(key: string): string {
  let best = '',
    bestD = Infinity;
  for (const k of KNOWN_KEYS) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, key.length / 4) ? ` (did you mean "${best}"?)` : '';
}

function zodProblems(error: z.ZodError): string[] {
  const out: string[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys)
        out.push(`unknown parameter "${k}"${suggest(k)}; the official names are listed in RAG-SPEC.md §5.1`);
      continue;
    }
    const where = issue.path.length ? issue.path.map(String).join('.') : 'parameters';
    out.push(`${where}: ${issue.message}`);
  }
  return out;
}

export function isRepaint(p: RagParams): boolean {
  return REPAINT_KEYS.some((k) => p[k] !== undefined) || p.Repainting_single !== undefined;
}

/** Every problem upstream would crash on or silently mishandle, as sentences that say what to change. */
export function ragParamsProblems(p: RagParams): string[] {
  const out: string[] = [];
  for (const [name, v] of [
    ['width', p.width],
    ['height', p.height],
  ] as const) {
    if (v % 16 !== 0)
      out.push(
        `${name} ${v} is not a multiple of 16 (FLUX works on 16-px tokens): use ${Math.max(16, Math.round(v / 16) * 16)}`,
      );
  }
  if (out.length) return out;
  if (p.HB_replace >= 0 || p.HB_prompt_list.length) out.push(...hbProblems(p));
  out.push(...srProblems(p.SR_hw_split_ratio, p.SR_prompt, 'SR_prompt', p.width, p.height));
  out.push(...loraProblems(p));
  if (isRepaint(p)) {
    const missing = REPAINT_KEYS.filter((k) => p[k] === undefined);
    if (missing.length) out.push(`a repaint needs all of ${REPAINT_KEYS.join(', ')}; missing: ${missing.join(', ')}`);
    if (p.Repainting_SR_prompt !== undefined) {
      const a = splitBreaks(p.SR_prompt).length;
      const b = splitBreaks(p.Repainting_SR_prompt).length;
      if (a !== b)
        out.push(
          `Repainting_SR_prompt has ${b} BREAK segments but SR_prompt has ${a}: the repaint reuses the same cells, so give one segment per cell`,
        );
      out.push(...reservedWordProblems(p.Repainting_SR_prompt, 'Repainting_SR_prompt'));
    }
    if (
      p.Repainting_HB_replace !== undefined &&
      p.num_inference_steps !== undefined &&
      p.Repainting_HB_replace >= p.num_inference_steps
    ) {
      out.push(
        `Repainting_HB_replace (${p.Repainting_HB_replace}) must be smaller than num_inference_steps (${p.num_inference_steps}), or the repaint never starts`,
      );
    }
  }
  return out;
}

/** Styles: one list per hard-binding box, and no more distinct (file, scale) pairs than the step graph takes. */
/** The painter's style slots these references take: one per distinct (file, scale) pair (LORA_LIMITS.maxLoras). */
export function styleSlots(refs: { name: string; scale: number }[]): number {
  return new Set(refs.map((r) => `${r.name}\u0000${r.scale}`)).size;
}

function loraProblems(p: RagParams): string[] {
  const out: string[] = [];
  if (p.HB_lora_list && p.HB_lora_list.length !== p.HB_prompt_list.length)
    out.push(
      `HB_lora_list has ${p.HB_lora_list.length} entries but HB_prompt_list has ${p.HB_prompt_list.length}: give one list of styles per box ([] for a box without)`,
    );
  if (p.Repainting_loras?.length && !isRepaint(p))
    out.push('Repainting_loras is set but these parameters do not repaint: add the Repainting_* fields or drop it');
  const slots = styleSlots([...(p.loras ?? []), ...(p.HB_lora_list ?? []).flat(), ...(p.Repainting_loras ?? [])]);
  if (slots > LORA_LIMITS.maxLoras)
    out.push(
      `these parameters use ${slots} styles (LoRA files at distinct scales); one paint takes at most ${LORA_LIMITS.maxLoras}: drop some, or use one scale per style`,
    );
  return out;
}

function reservedWordProblems(text: string, name: string): string[] {
  const upper = text.toUpperCase();
  const found = RESERVED_SR_WORDS.filter((w) => upper.includes(w));
  return found.length
    ? [`${name} contains ${found.join(', ')}, which upstream's parser treats as grid keywords: reword it`]
    : [];
}

function srProblems(ratio: string, srPrompt: string, name: string, width: number, height: number): string[] {
  const out: string[] = [];
  const parsed = parseSplitRatio(ratio);
  for (const w of parsed.warnings)
    out.push(`SR_hw_split_ratio "${ratio}": ${w}; write plain decimal numbers such as 0.33 instead`);
  for (const row of [...parsed.rows.map((r) => r), ...parsed.rows.flatMap((r) => r.cols)]) {
    if (!Number.isFinite(row.start) || !Number.isFinite(row.end) || row.end < row.start) {
      out.push(`SR_hw_split_ratio "${ratio}" has a zero, negative or non-finite weight: every weight must be positive`);
      break;
    }
  }
  if (parsed.cellCount < 2)
    out.push(
      `SR_hw_split_ratio "${ratio}" makes a single cell; soft refinement needs at least 2 (upstream crashes): use "1,1" with two identical prompts and SR_delta 0 to switch it off`,
    );
  const segments = splitBreaks(srPrompt).length;
  if (segments !== parsed.cellCount) {
    out.push(
      `${name} has ${segments} BREAK-separated segment${segments === 1 ? '' : 's'} but SR_hw_split_ratio "${ratio}" makes ${parsed.cellCount} cells: give exactly one segment per cell, in row-major order`,
    );
  }
  out.push(...reservedWordProblems(srPrompt, name));
  if (!out.length) {
    const grid = splitRatioCells(parsed, width, height);
    for (const p of grid.problems) out.push(`SR_hw_split_ratio "${ratio}" at ${width}×${height}: ${p}`);
  }
  return out;
}

/** Parses and checks RAG parameters; throws RagParamsError listing every problem. */
export function validateRagParams(input: unknown, where?: string): RagParams {
  const parsed = RagParamsSchema.safeParse(input);
  if (!parsed.success) throw new RagParamsError(zodProblems(parsed.error), where);
  const problems = ragParamsProblems(parsed.data);
  if (problems.length) throw new RagParamsError(problems, where);
  return parsed.data;
}

/** What an engine needs from validated parameters, computed once. */
export interface RagLayout {
  hbBoxes: TokenRect[];
  split: ParsedSplitRatio;
  grid: SplitGrid;
  maps: CellMaps;
  /** `SR_prompt.split("BREAK")`, untrimmed as upstream encodes them. */
  srSegments: string[];
  repaintSrSegments?: string[];
  gridRows: number;
  gridCols: number;
}

export function ragLayout(p: RagParams): RagLayout {
  const split = parseSplitRatio(p.SR_hw_split_ratio);
  const grid = splitRatioCells(split, p.width, p.height);
  return {
    hbBoxes: p.HB_replace >= 0 || p.HB_prompt_list.length ? hbTokenBoxes(p) : [],
    split,
    grid,
    maps: cellMaps(grid),
    srSegments: splitBreaks(p.SR_prompt),
    repaintSrSegments: p.Repainting_SR_prompt === undefined ? undefined : splitBreaks(p.Repainting_SR_prompt),
    gridRows: p.height / 16,
    gridCols: p.width / 16,
  };
}

/**
 * Reads a params file: one object, or an array of them (the official gallery files). Each entry is validated;
 * problems name the file and the entry.
 */
export function loadRagParamsFile(file: string): RagParams[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RagParamsError([`cannot read ${file}: ${(e as Error).message}`]);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new RagParamsError([`${file} is not valid JSON: ${(e as Error).message}`]);
  }
  const list = Array.isArray(data) ? data : [data];
  if (!list.length) throw new RagParamsError([`${file} holds an empty list: put at least one parameter object in it`]);
  return list.map((entry, i) => validateRagParams(entry, Array.isArray(data) ? `${file} entry ${i}` : file));
}

/**
 * Finds a `Repainting_mask` path given in a params file. Tried in order: as given (absolute, or relative to
 * the file's folder); then the file name alone in that folder and in its `masks/` subfolder (the official
 * galleries name `data/Repainting_mask/mask_N.png`, a path inside the upstream repository).
 */
export function resolveMaskPath(mask: string, baseDir: string): string {
  const tried = [
    path.resolve(baseDir, mask),
    path.join(baseDir, path.basename(mask)),
    path.join(baseDir, 'masks', path.basename(mask)),
  ];
  for (const p of tried) if (existsSync(p)) return p;
  throw new RagParamsError([`Repainting_mask "${mask}" not found; tried ${tried.join(', ')}`]);
}

/** Repainting_single as upstream's 0/1. */
export function repaintingSingle(p: RagParams): 0 | 1 {
  return p.Repainting_single === true || p.Repainting_single === 1 ? 1 : 0;
}
