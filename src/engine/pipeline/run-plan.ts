/**
 * What one run of the pipeline paints, in engine terms: sizes, schedule length, the prompts of every stream and
 * the token-grid layouts. Built from official RAG parameters (planFromRagParams) or from a plain prompt
 * (plainPlan); the layouts come from src/rag (token boxes, SR cell maps with upstream's rounding, mask → tokens).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../config/errors.ts';
import type { TokenRect } from '../../rag/boxes.ts';
import { maskToTokens, type TokenMask } from '../../rag/mask.ts';
import {
  isRepaint,
  ragLayout,
  repaintingSingle,
  resolveMaskPath,
  validateRagParams,
  type RagParams,
} from '../../rag/params.ts';
import type { CellMaps } from '../../rag/split-ratio.ts';
import type { LoraRef } from '../../rag/params.ts';
import { planHasLoras, type PlanLoras } from '../lora/feeds.ts';

export interface RepaintPart {
  /** Repainting_prompt (CLIP, and T5 unless prompt2). */
  prompt: string;
  /**
   * The request's global prompt_2. Upstream encodes Repainting_prompt and Repainting_HB_prompt with
   * `encode_prompt(prompt=…, prompt_2=prompt_2)`, so when it is given it is the T5 text of the repaint pass and of
   * the pre-pass alike (CLIP keeps their own prompts).
   */
  prompt2?: string;
  /** Repainting_SR_prompt segments (same cells as the main pass); absent when SR is off. */
  srSegments?: string[];
  /** Repainting_HB_prompt: the pre-pass prompt on the mask's bounding box. */
  hbPrompt: string;
  /** Repainting_HB_replace (R): pre-pass steps, and the step the repaint pass starts at. */
  hbReplace: number;
  seed: number;
  single: boolean;
  mask: TokenMask & { bbox: NonNullable<TokenMask['bbox']> };
}

export interface RunPlan {
  width: number;
  height: number;
  steps: number;
  /** Guidance scale (ignored by schnell, which has no guidance embedding). */
  guidance: number;
  seed: number;
  /** T5 length the conditioning must have. */
  textLength: number;
  prompt: string;
  /** T5 override of the prompt (diffusers prompt_2). */
  prompt2?: string;
  /** HB_replace: −1 = off, 0 = only the initial noise is pasted, r ≥ 1 = r bound steps. */
  hbReplace: number;
  boxes: { prompt: string; rect: TokenRect }[];
  /** Soft refinement; absent when off (SR_delta = 0 leaves SR out of the graph: exactly plain FLUX). */
  sr?: { segments: string[]; delta: number; maps: CellMaps; ratio: string };
  repaint?: RepaintPart;
  /** Styles (LoRA file paths and scales; docs/styles.md); absent: none. */
  loras?: PlanLoras;
}

export interface PlanDefaults {
  steps: number;
  guidance: number;
  textLength: number;
}

/** A plain text-to-image run: no boxes, no SR, no repaint. */
export function plainPlan(
  prompt: string,
  o: Pick<RunPlan, 'width' | 'height' | 'steps' | 'guidance' | 'seed' | 'textLength'> & { loras?: LoraRef[] },
): RunPlan {
  for (const [name, v] of [
    ['width', o.width],
    ['height', o.height],
  ] as const) {
    if (!Number.isInteger(v) || v < 16 || v % 16 !== 0)
      throw new UserError(`${name} ${v} must be a positive multiple of 16 (FLUX works on 16-px tokens)`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 1)
    throw new UserError(`steps must be a whole number ≥ 1 (got ${o.steps})`);
  const { loras, ...sizes } = o;
  return {
    ...sizes,
    prompt,
    hbReplace: -1,
    boxes: [],
    ...(loras?.length ? { loras: { global: loras, boxes: [], repaint: [] } } : {}),
  };
}

/** Where a Repainting_mask given as a path is: absolute, relative to `baseDir`, or beside it (resolveMaskPath). */
export function maskSource(mask: string | Uint8Array, baseDir: string | undefined): string | Uint8Array {
  if (typeof mask !== 'string') return mask;
  if (path.isAbsolute(mask) && existsSync(mask)) return mask;
  return resolveMaskPath(mask, baseDir ?? process.cwd());
}

/**
 * Validates official RAG parameters and turns them into a plan. `baseDir` resolves a relative Repainting_mask
 * (the params file's folder). Defaults fill what the parameters leave out (steps, guidance, T5 length).
 */
export async function planFromRagParams(
  input: RagParams,
  d: PlanDefaults,
  o: { baseDir?: string } = {},
): Promise<RunPlan> {
  const p = validateRagParams(input);
  const layout = ragLayout(p);
  const steps = p.num_inference_steps ?? d.steps;
  const plan: RunPlan = {
    width: p.width,
    height: p.height,
    steps,
    guidance: p.guidance_scale ?? d.guidance,
    seed: p.seed,
    textLength: p.max_sequence_length ?? d.textLength,
    prompt: p.prompt,
    ...(p.prompt_2 !== undefined ? { prompt2: p.prompt_2 } : {}),
    hbReplace: p.HB_replace,
    boxes: layout.hbBoxes.map((rect, k) => ({ prompt: p.HB_prompt_list[k]!, rect })),
  };
  const loras: PlanLoras = {
    global: p.loras ?? [],
    boxes: plan.boxes.map((b, k) => ({ rect: b.rect, loras: p.HB_lora_list?.[k] ?? [] })),
    repaint: p.Repainting_loras ?? [],
  };
  if (planHasLoras(loras)) plan.loras = loras;
  if (p.SR_delta > 0)
    plan.sr = { segments: layout.srSegments, delta: p.SR_delta, maps: layout.maps, ratio: p.SR_hw_split_ratio };
  if (isRepaint(p)) {
    const R = p.Repainting_HB_replace!;
    if (R >= steps)
      throw new UserError(
        `Repainting_HB_replace (${R}) must be smaller than the number of steps (${steps}), or the repaint never starts`,
      );
    const mask = await maskToTokens(maskSource(p.Repainting_mask!, o.baseDir), p.width, p.height);
    if (!mask.bbox)
      throw new UserError('the repainting mask has no black pixels: black marks the area to repaint (white = keep)');
    plan.repaint = {
      prompt: p.Repainting_prompt!,
      hbPrompt: p.Repainting_HB_prompt!,
      hbReplace: R,
      ...(p.prompt_2 !== undefined ? { prompt2: p.prompt_2 } : {}),
      seed: p.Repainting_seed!,
      single: repaintingSingle(p) === 1,
      mask: mask as RepaintPart['mask'],
      ...(plan.sr ? { srSegments: layout.repaintSrSegments! } : {}),
    };
  }
  return plan;
}
