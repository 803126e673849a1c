/**
 * The engine as the worker sees it (src/worker/painter.ts): a PaintRequest → PNG + artifacts.
 *
 * - generate: the request's RAG parameters (params.rag, as the bot derived them) or, when absent, the Scene
 *   mapped by scene/to-rag.ts with the request's seed and steps and this model's defaults.
 * - repaint: params.rag (the parent's parameters plus Repainting_*, mask as a file path) or, when absent, the
 *   edit re-derived from the request's regions with editToRepaintParams. A first-generation parent is re-run
 *   from its noise in lock-step (exact RAG); a parent that is itself a repaint is replayed from its stored
 *   trajectory (at most two passes per step, see pipeline/trajectory.ts). Pixels outside the dilated mask are the
 *   parent's image.
 * Progress after every step, with a small preview PNG (linear latent → RGB map, no VAE) every few steps.
 */
import { UserError } from '../config/errors.ts';
import { isRepaint, validateRagParams, type RagParams } from '../rag/params.ts';
import { editToRepaintParams, sceneToRagParams } from '../scene/to-rag.ts';
import type { AppliedEdit } from '../scene/edit.ts';
import type { GenerationParams } from '../store/schema.ts';
import type { Painter, PainterOptions, PaintRequest } from '../worker/painter.ts';
import { Engine } from './pipeline/engine.ts';
import { generateJob, repaintJob } from './pipeline/jobs.ts';
import { TRAJECTORY_ARTIFACT } from './pipeline/trajectory.ts';

export { TRAJECTORY_ARTIFACT };

/** RAG parameters of a generation: as stored with it, or derived from its Scene for this model. */
export function ragParamsOf(engine: Pick<Engine, 'modelId'>, p: GenerationParams): RagParams {
  if (p.rag !== undefined) return validateRagParams(p.rag, 'the job\'s RAG parameters');
  return sceneToRagParams(p.scene, { model: engine.modelId, seed: p.seed, steps: p.steps });
}

/** The repaint parameters of a repaint request (the parent's parameters plus Repainting_*). */
export async function repaintParamsOf(engine: Engine, request: PaintRequest): Promise<{ params: RagParams; parent: RagParams }> {
  const parentInfo = request.parent;
  if (!parentInfo) throw new UserError('a repaint job needs its parent generation (request.parent)');
  const parent = ragParamsOf(engine, parentInfo.params);
  if (request.params.rag !== undefined) return { params: validateRagParams(request.params.rag, 'the repaint\'s RAG parameters'), parent };
  const regions = request.params.repaint?.regions;
  if (!regions?.length) throw new UserError('a repaint job needs the regions that changed (params.repaint.regions) or its RAG parameters');
  const applied: AppliedEdit = { scene: request.params.scene, repaint: regions, regenerate: false, reason: 'regions changed in place' };
  const plan = await editToRepaintParams(parent, applied, { model: engine.modelId });
  if (plan.mode !== 'repaint') throw new UserError(`this edit cannot be repainted (${plan.reason}): paint the edited layout as a new generation`);
  return { params: plan.params, parent };
}

export async function createPainter(options: PainterOptions): Promise<Painter> {
  const extra = options.extra ?? {};
  const engine = Engine.open({
    modelDir: options.modelDir,
    runtime: { executionProvider: options.executionProvider, threads: options.threads },
  });
  const previewEvery = typeof extra.previewEvery === 'number' ? extra.previewEvery : undefined;
  // Everything is loaded before the worker reports ready, so no user's job pays for it (jobs wait meanwhile).
  if (extra.warmUp !== false) await engine.warmUp();
  return {
    info: { id: engine.modelId, version: engine.version },
    async paint(request, ctx) {
      const progress = { onProgress: ctx.onProgress, signal: ctx.signal, ...(previewEvery !== undefined ? { previewEvery } : {}) };
      const out = request.kind === 'generate'
        ? await generateJob(engine, ragParamsOf(engine, request.params), progress)
        : await (async () => {
            const { params, parent } = await repaintParamsOf(engine, request);
            const files = request.parent!.artifacts;
            const kind = request.parent!.params.repaint !== undefined || isRepaint(parent) ? 'repaint' : 'generate';
            return repaintJob(engine, params, { params: parent, image: files['image.png'], trajectory: files[TRAJECTORY_ARTIFACT], kind }, progress);
          })();
      return { png: out.image, artifacts: out.artifacts };
    },
    close: () => engine.close(),
  };
}
