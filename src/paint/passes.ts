/**
 * The paint request, decided in one place: what a Scene, or a parent generation plus an edit, asks the engine
 * to run, as the exact list of RAG passes.
 *
 *   a Scene                → [P]            P = the Scene's RAG parameters (hard-binding boxes, SR grid)
 *   a parent + an edit     → [R1, …, Rn]    each Ri = the parent's last pass + Repainting_* (mask, prompts,
 *                                           seed); Ri repaints the image Ri−1 painted, R1 the parent's
 *   an edit that moves a box or changes the global prompt → a new generation of the edited Scene
 *
 * The bot and the CLI build it before anything is queued or loaded; the generation row stores it and the job
 * carries it, so the worker's painter runs the passes in order and decides nothing. Masks travel inside the
 * passes as `data:` URLs (a few KB each), so a pass needs no file beside it on whatever machine paints it.
 */
import type { ModelId, ModelManifest } from '../engine/model-manifest.ts';
import { validateRagParams, type RagParams } from '../rag/params.ts';
import type { AppliedEdit } from '../scene/edit.ts';
import type { Scene } from '../scene/schema.ts';
import { editToRepaintParams, editToRepaintPasses, sceneToRagParams, type RagOptions } from './scene-to-rag.ts';

export interface PaintOptions {
  /** Whose defaults apply (models/<id>.json); FLUX.1-dev when unset. */
  model?: ModelId | ModelManifest;
}

/** The passes of a new generation: one, from the Scene. */
export function generationPasses(scene: Scene, o: RagOptions = {}): RagParams[] {
  return [portablePass(sceneToRagParams(scene, o))];
}

/** What a repaint asks for, as the bot and the CLI show it before it is painted. */
export type RepaintDecision =
  | {
      mode: 'repaint';
      /** One pass per changed region (or one for all, `together`), masks inside as data: URLs. */
      passes: RagParams[];
      /** The mask of each pass (8-bit grey PNG: black = repaint). */
      masks: Buffer[];
      /** The region ids each pass repaints. */
      regionIds: string[][];
      chained: boolean;
    }
  | { mode: 'regenerate'; passes: RagParams[]; reason: string }
  | { mode: 'unchanged'; reason: string };

export interface RepaintOptions extends PaintOptions {
  /** The repaint noise; unset = derived from the parent's seed and the edit. */
  repaintSeed?: number;
  /**
   * Several changed regions are repainted one after another, each pass bound to its own label only (the
   * default), or `together` in one pass whose mask is the union of theirs (what `repaint --edit` did before).
   */
  regions?: 'chained' | 'together';
}

/**
 * The passes of a repaint of `parent` (its last pass and the Scene it was painted from) by an applied edit.
 * A moved box or a new global prompt, background or exclusion list is a new generation of the edited Scene with
 * the parent's seed, steps and guidance.
 */
export async function repaintPasses(
  parent: { pass: RagParams; scene: Scene },
  applied: AppliedEdit,
  o: RepaintOptions = {},
): Promise<RepaintDecision> {
  // Repainting_* fields of a parent that is itself a repaint are all replaced by the new pass's own.
  const original = parent.pass;
  const opts = {
    ...(o.model ? { model: o.model } : {}),
    ...(o.repaintSeed !== undefined ? { repaintSeed: o.repaintSeed } : {}),
  };
  if (applied.regenerate || !applied.repaint.length || applied.repaint.length === 1 || o.regions === 'together') {
    const plan = await editToRepaintParams(original, applied, opts);
    if (plan.mode === 'unchanged') return plan;
    if (plan.mode === 'regenerate')
      return { mode: 'regenerate', passes: [portablePass(plan.params)], reason: plan.reason };
    return {
      mode: 'repaint',
      passes: [portablePass(plan.params)],
      masks: [plan.mask],
      regionIds: [plan.regionIds],
      chained: false,
    };
  }
  const passes = await editToRepaintPasses(original, parent.scene, applied, opts);
  return {
    mode: 'repaint',
    passes: passes.map((p) => portablePass(p.params)),
    masks: passes.map((p) => p.mask),
    regionIds: passes.map((p) => p.regionIds),
    chained: true,
  };
}

const DATA_URL = 'data:image/png;base64,';

/** The pass with its mask bytes written into it (JSON-safe, machine-independent). */
export function portablePass(p: RagParams): RagParams {
  const m = p.Repainting_mask;
  if (!(m instanceof Uint8Array)) return p;
  return { ...p, Repainting_mask: DATA_URL + Buffer.from(m).toString('base64') };
}

/** The pass as the engine takes it: a `data:` mask back to its PNG bytes (paths are left to the engine). */
export function runnablePass(p: RagParams, where = 'a paint pass'): RagParams {
  const v = validateRagParams(p, where);
  const m = v.Repainting_mask;
  if (typeof m !== 'string' || !m.startsWith(DATA_URL)) return v;
  return { ...v, Repainting_mask: new Uint8Array(Buffer.from(m.slice(DATA_URL.length), 'base64')) };
}
