/**
 * Scene → RAG parameters (pure, apart from encoding a mask PNG).
 *
 * Hard binding: one box per region, its label as `HB_prompt_list` entry, edges on the 16-px token grid,
 * written as fractions that upstream's `int(f·W // 16)` maps back to exactly those tokens.
 * Soft refinement: the grid of soft-grid.ts.
 * Repaint: the mask is the union of the changed regions' old and new boxes, BLACK = repaint (RAG's
 * convention, the opposite of most inpainting tools), white = keep, at the image size.
 */
import { loadModelManifest, type ModelId, type ModelManifest } from '../engine/model-manifest.ts';
import { tokensToFraction } from '../rag/boxes.ts';
import { rectsToMaskPng, type PixelRect } from '../rag/mask.ts';
import { validateRagParams, type LoraRef, type RagParams } from '../rag/params.ts';
import type { AppliedEdit } from '../scene/edit.ts';
import { sceneToJSON, styleJSON } from '../scene/json.ts';
import { boxToTokens, deriveSoftGrid, fillSoftGrid, type SoftGrid, type TokenRect } from './soft-grid.ts';
import { TOKEN_PX, type Box, type Region, type Scene } from '../scene/schema.ts';

function manifestOf(model: ModelId | ModelManifest | undefined): ModelManifest {
  if (model === undefined) return loadModelManifest('flux.1-dev');
  return typeof model === 'string' ? loadModelManifest(model) : model;
}

// ---------------------------------------------------------------------------------------------------------
// Scene → parameters

export interface RagOptions {
  /** Model whose defaults apply (models/<id>.json); FLUX.1-dev when unset. */
  model?: ModelId | ModelManifest;
  /** Unset: derived from the scene, so the same scene paints the same picture. */
  seed?: number;
  steps?: number;
  guidance?: number;
  hbReplace?: number;
  srDelta?: number;
}

/** A stable 31-bit seed from any text (FNV-1a). */
export function seedFromText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 2147483647;
}

export interface SceneRag {
  params: RagParams;
  grid: SoftGrid;
  /** Token rectangle of each region's hard-binding box, in scene order. */
  boxes: { id: string; rect: TokenRect }[];
}

export function sceneToRag(scene: Scene, opts: RagOptions = {}): SceneRag {
  const model = manifestOf(opts.model);
  const grid = deriveSoftGrid(scene);
  const boxes = scene.regions.map((r) => ({ id: r.id, rect: boxToTokens(r.box, scene.width, scene.height) }));
  const hasRegions = boxes.length > 0;
  const params: RagParams = {
    prompt: scene.prompt,
    HB_prompt_list: scene.regions.map((r) => r.label),
    HB_m_offset_list: boxes.map((b) => tokensToFraction(b.rect.c0, scene.width)),
    HB_n_offset_list: boxes.map((b) => tokensToFraction(b.rect.r0, scene.height)),
    HB_m_scale_list: boxes.map((b) => tokensToFraction(b.rect.c1 - b.rect.c0, scene.width)),
    HB_n_scale_list: boxes.map((b) => tokensToFraction(b.rect.r1 - b.rect.r0, scene.height)),
    HB_replace: hasRegions ? (opts.hbReplace ?? model.defaults.HB_replace) : -1,
    SR_prompt: grid.cells.map((c) => c.prompt).join(' BREAK '),
    SR_hw_split_ratio: grid.ratio,
    // Without regions every cell says the same thing: soft refinement would only dilute the global prompt.
    SR_delta: hasRegions ? (opts.srDelta ?? model.defaults.SR_delta) : 0,
    seed: opts.seed ?? seedFromText(sceneToJSON(scene)),
    num_inference_steps: opts.steps ?? model.defaults.num_inference_steps,
    guidance_scale: opts.guidance ?? model.defaults.guidance_scale,
    height: scene.height,
    width: scene.width,
    // Style fields only when the scene has styles: a style-less pass is exactly what it was before styles existed.
    ...(scene.loras?.length ? { loras: scene.loras.map(styleJSON) } : {}),
    ...(scene.regions.some((r) => r.loras?.length)
      ? { HB_lora_list: scene.regions.map((r) => (r.loras ?? []).map(styleJSON)) }
      : {}),
  };
  return { params: validateRagParams(params, 'parameters derived from the scene'), grid, boxes };
}

/** The styles of the regions a repaint paints, each once (the first scale given wins). */
function repaintStyles(regions: Region[]): LoraRef[] {
  const out = new Map<string, LoraRef>();
  for (const r of regions) for (const s of r.loras ?? []) if (!out.has(s.name)) out.set(s.name, styleJSON(s));
  return [...out.values()];
}

export function sceneToRagParams(scene: Scene, opts: RagOptions = {}): RagParams {
  return sceneToRag(scene, opts).params;
}

// ---------------------------------------------------------------------------------------------------------
// Edit → repaint parameters

export type RepaintPlan =
  | {
      mode: 'repaint';
      /** The original parameters plus the Repainting_* fields; `Repainting_mask` holds the mask PNG bytes. */
      params: RagParams;
      /** 8-bit grey PNG at the image size: black = repaint, white = keep. */
      mask: Buffer;
      maskRects: PixelRect[];
      regionIds: string[];
    }
  | { mode: 'regenerate'; params: RagParams; reason: string }
  | { mode: 'unchanged'; reason: string };

export interface RepaintOptions {
  model?: ModelId | ModelManifest;
  /** Unset: derived from the original seed and the edit. */
  repaintSeed?: number;
}

function pixelRect(box: Box, width: number, height: number): PixelRect {
  const t = boxToTokens(box, width, height);
  return { x: t.c0 * TOKEN_PX, y: t.r0 * TOKEN_PX, w: (t.c1 - t.c0) * TOKEN_PX, h: (t.r1 - t.r0) * TOKEN_PX };
}

/**
 * Turns an applied edit into what the engine runs. In-place changes (label/prompt changes, additions,
 * removals) become a RAG repaint of the original parameters; a moved box or a new global prompt,
 * background or exclusion list (`applied.regenerate`) becomes a new generation of the edited scene with the
 * original seed, steps and guidance.
 */
export async function editToRepaintParams(
  original: RagParams,
  applied: AppliedEdit,
  opts: RepaintOptions = {},
): Promise<RepaintPlan> {
  const model = manifestOf(opts.model);
  const scene = applied.scene;
  if (scene.width !== original.width || scene.height !== original.height) {
    throw new Error(
      `the edited scene is ${scene.width}×${scene.height} but the original was painted at ${original.width}×${original.height}`,
    );
  }
  if (applied.regenerate) {
    const params = sceneToRagParams(scene, {
      model,
      seed: original.seed,
      steps: original.num_inference_steps,
      guidance: original.guidance_scale,
    });
    return { mode: 'regenerate', params, reason: applied.reason };
  }
  if (!applied.repaint.length) return { mode: 'unchanged', reason: applied.reason };

  return repaintPass(original, scene, applied.repaint, model, opts.repaintSeed);
}

/** One repaint of `changes` (their old and new boxes form the mask) over `scene` (what the picture holds after it). */
async function repaintPass(
  original: RagParams,
  scene: Scene,
  changes: AppliedEdit['repaint'],
  model: ModelManifest,
  repaintSeed?: number,
): Promise<Extract<RepaintPlan, { mode: 'repaint' }>> {
  const rects: PixelRect[] = [];
  for (const r of changes) {
    if (r.oldBox) rects.push(pixelRect(r.oldBox, scene.width, scene.height));
    if (r.newBox) rects.push(pixelRect(r.newBox, scene.width, scene.height));
  }
  const mask = await rectsToMaskPng(rects, scene.width, scene.height);
  const byId = new Map(scene.regions.map((r) => [r.id, r] as const));
  const kept = changes.map((r) => byId.get(r.id)).filter((r) => r !== undefined);
  // A removal repaints the hole with what is behind it.
  const hbPrompt = kept.length ? kept.map((r) => r.label).join(' and ') : scene.background.trim() || scene.prompt;
  const grid = fillSoftGrid(scene, original.SR_hw_split_ratio);
  const regionIds = changes.map((r) => r.id);
  // The parent's own styles (loras, HB_lora_list) stay: the main pass must re-run the parent exactly. A parent
  // that was itself a repaint leaves its Repainting_loras behind with its other Repainting_* fields.
  const { Repainting_loras: _parentRepaintStyles, ...parentPass } = original;
  const styles = repaintStyles(kept);
  const params: RagParams = {
    ...parentPass,
    ...(styles.length ? { Repainting_loras: styles } : {}),
    Repainting_mask: mask,
    Repainting_prompt: scene.prompt,
    Repainting_SR_prompt: grid.cells.map((c) => c.prompt).join(' BREAK '),
    Repainting_HB_prompt: hbPrompt,
    // The repaint branch starts at step R: it must start before the last step of a short (few-step) run.
    Repainting_HB_replace: Math.max(
      0,
      Math.min(
        model.defaults.Repainting_HB_replace,
        (original.num_inference_steps ?? model.defaults.num_inference_steps) - 1,
      ),
    ),
    Repainting_seed: repaintSeed ?? seedFromText(`${original.seed}:${regionIds.join(',')}:${hbPrompt}`),
    Repainting_single: model.defaults.Repainting_single,
  };
  return {
    mode: 'repaint',
    params: validateRagParams(params, 'repaint parameters derived from the edit'),
    mask,
    maskRects: rects,
    regionIds,
  };
}

/**
 * Several regions changed in one edit, as chained repaints: one pass per changed region, in the edit's order,
 * each with its own mask (its old and new box), its own hard-binding prompt (its label) and the soft-refinement
 * prompts of the picture as it stands after that pass (earlier changes done, later ones not yet), each pass
 * repainting the result of the one before. No region is painted with another one's prompt, and since every
 * pass keeps the pixels outside its own dilated mask, everything outside all the masks stays the parent's.
 * `parentScene` is the scene the original parameters were painted from. A single change is one pass, the same
 * as editToRepaintParams.
 */
export async function editToRepaintPasses(
  original: RagParams,
  parentScene: Scene,
  applied: AppliedEdit,
  opts: RepaintOptions = {},
): Promise<Extract<RepaintPlan, { mode: 'repaint' }>[]> {
  const model = manifestOf(opts.model);
  const final = applied.scene;
  if (applied.regenerate)
    throw new Error(`this edit cannot be repainted (${applied.reason}): paint the edited layout as a new generation`);
  if (!applied.repaint.length) return [];
  if (final.width !== original.width || final.height !== original.height) {
    throw new Error(
      `the edited scene is ${final.width}×${final.height} but the original was painted at ${original.width}×${original.height}`,
    );
  }
  const finalById = new Map(final.regions.map((r) => [r.id, r] as const));
  let regions = parentScene.regions;
  const passes: Extract<RepaintPlan, { mode: 'repaint' }>[] = [];
  for (const change of applied.repaint) {
    const next = finalById.get(change.id);
    if (!next) regions = regions.filter((r) => r.id !== change.id);
    else if (regions.some((r) => r.id === change.id)) regions = regions.map((r) => (r.id === change.id ? next : r));
    else regions = [...regions, next];
    const scene: Scene = { ...final, regions };
    passes.push(await repaintPass(original, scene, [change], model, opts.repaintSeed));
  }
  return passes;
}
