/**
 * The passes of a stored generation or a queued job. New rows and jobs carry `passes` (passes.ts); rows and jobs
 * written before they did carry the last pass as `rag`, or only the Scene and the changed regions: their passes
 * are rebuilt here by the same rules, so old generations stay repaintable and old queued jobs still paint.
 */
import { UserError } from '../config/errors.ts';
import type { ModelId } from '../engine/model-manifest.ts';
import { validateRagParams, type RagParams } from '../rag/params.ts';
import type { AppliedEdit } from '../scene/edit.ts';
import type { Scene } from '../scene/schema.ts';
import { repaintPasses } from './passes.ts';
import { sceneToRagParams } from './scene-to-rag.ts';

/** What a generation row and a job hold (store/schema.ts GenerationParams), as far as passes go. */
export interface StoredParams {
  scene: Scene;
  seed: number;
  steps: number;
  rag?: unknown;
  passes?: unknown[];
  repaint?: { regions: AppliedEdit['repaint']; mode?: 'single' | 'chained' };
}

/** The parameters the generation's image was painted with: its last pass. */
export function lastPassOf(p: StoredParams, model?: ModelId, where = "the generation's RAG parameters"): RagParams {
  if (p.passes?.length) return validateRagParams(p.passes[p.passes.length - 1], where);
  if (p.rag !== undefined) return validateRagParams(p.rag, where);
  return sceneToRagParams(p.scene, { model, seed: p.seed, steps: p.steps });
}

/** Every pass a job runs, in order. */
export async function passesOf(
  request: { kind: 'generate' | 'repaint'; params: StoredParams; parent?: { params: StoredParams } },
  model?: ModelId,
): Promise<RagParams[]> {
  const p = request.params;
  if (p.passes?.length) return p.passes.map((x, i) => validateRagParams(x, `the job's pass ${i + 1}`));
  if (request.kind === 'generate') return [lastPassOf(p, model, "the job's RAG parameters")];
  const chained = p.repaint?.mode === 'chained';
  if (p.rag !== undefined && !chained) return [validateRagParams(p.rag, "the repaint's RAG parameters")];
  if (!request.parent) throw new UserError('a repaint job needs its parent generation (request.parent)');
  const regions = p.repaint?.regions;
  if (!regions?.length)
    throw new UserError('a repaint job needs the regions that changed (params.repaint.regions) or its RAG parameters');
  const parent = request.parent.params;
  const decision = await repaintPasses(
    { pass: lastPassOf(parent, model), scene: parent.scene },
    { scene: p.scene, repaint: regions, regenerate: false, reason: 'regions changed in place' },
    { model, regions: chained ? 'chained' : 'together' },
  );
  if (decision.mode !== 'repaint')
    throw new UserError(
      `this edit cannot be repainted (${decision.reason}): paint the edited layout as a new generation`,
    );
  return decision.passes;
}
