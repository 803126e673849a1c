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
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UserError } from '../config/errors.ts';
import { isRepaint, validateRagParams, type RagParams } from '../rag/params.ts';
import { editToRepaintParams, editToRepaintPasses, sceneToRagParams } from '../scene/to-rag.ts';
import type { AppliedEdit } from '../scene/edit.ts';
import type { GenerationParams } from '../store/schema.ts';
import type { Painter, PainterHooks, PainterOptions, PaintRequest } from '../worker/painter.ts';
import { Engine } from './pipeline/engine.ts';
import type { WeightForms } from './weights/forms.ts';
import { generateJob, repaintJob, type JobOutput, type JobProgress, type ParentGeneration } from './pipeline/jobs.ts';
import { TRAJECTORY_ARTIFACT } from './pipeline/trajectory.ts';

export { TRAJECTORY_ARTIFACT };

/** RAG parameters of a generation: as stored with it, or derived from its Scene for this model. */
export function ragParamsOf(engine: Pick<Engine, 'modelId'>, p: GenerationParams): RagParams {
  if (p.rag !== undefined) return validateRagParams(p.rag, "the job's RAG parameters");
  return sceneToRagParams(p.scene, { model: engine.modelId, seed: p.seed, steps: p.steps });
}

/** The repaint parameters of a repaint request (the parent's parameters plus Repainting_*). */
export async function repaintParamsOf(
  engine: Engine,
  request: PaintRequest,
): Promise<{ params: RagParams; parent: RagParams }> {
  const parentInfo = request.parent;
  if (!parentInfo) throw new UserError('a repaint job needs its parent generation (request.parent)');
  const parent = ragParamsOf(engine, parentInfo.params);
  if (request.params.rag !== undefined)
    return { params: validateRagParams(request.params.rag, "the repaint's RAG parameters"), parent };
  const regions = request.params.repaint?.regions;
  if (!regions?.length)
    throw new UserError('a repaint job needs the regions that changed (params.repaint.regions) or its RAG parameters');
  const applied: AppliedEdit = {
    scene: request.params.scene,
    repaint: regions,
    regenerate: false,
    reason: 'regions changed in place',
  };
  const plan = await editToRepaintParams(parent, applied, { model: engine.modelId });
  if (plan.mode !== 'repaint')
    throw new UserError(`this edit cannot be repainted (${plan.reason}): paint the edited layout as a new generation`);
  return { params: plan.params, parent };
}

/**
 * A repaint that changes several regions (params.repaint.mode 'chained'): one repaint pass per region, each on
 * the result of the one before, with its own mask and prompts (scene/to-rag.ts editToRepaintPasses). Each pass
 * keeps the pixels outside its dilated mask, so outside all of them the image is the parent's. Between passes
 * the intermediate image and trajectory live in a temporary folder; the last pass's artifacts are returned.
 */
export async function chainedRepaintJob(
  engine: Engine,
  request: PaintRequest,
  o: JobProgress = {},
): Promise<JobOutput> {
  const parentInfo = request.parent;
  const regions = request.params.repaint?.regions;
  if (!parentInfo || !regions?.length)
    throw new UserError('a chained repaint needs its parent generation and the regions that changed');
  const first = ragParamsOf(engine, parentInfo.params);
  const applied: AppliedEdit = {
    scene: request.params.scene,
    repaint: regions,
    regenerate: false,
    reason: 'regions changed in place',
  };
  const passes = await editToRepaintPasses(first, parentInfo.params.scene, applied, { model: engine.modelId });
  let parent: ParentGeneration = {
    params: first,
    image: parentInfo.artifacts['image.png'],
    trajectory: parentInfo.artifacts[TRAJECTORY_ARTIFACT],
    kind: parentInfo.params.repaint !== undefined || isRepaint(first) ? 'repaint' : 'generate',
  };
  const dir = mkdtempSync(path.join(tmpdir(), 'sw-chain-'));
  try {
    let out: JobOutput | undefined;
    for (const [i, pass] of passes.entries()) {
      const onProgress =
        o.onProgress &&
        ((step: number, total: number, png?: Uint8Array) =>
          o.onProgress!(i * total + step, passes.length * total, png));
      out = await repaintJob(engine, pass.params, parent, { ...o, ...(onProgress ? { onProgress } : {}) });
      if (i === passes.length - 1) break;
      const image = path.join(dir, `pass-${i + 1}.png`),
        trajectory = path.join(dir, `pass-${i + 1}-${TRAJECTORY_ARTIFACT}`);
      writeFileSync(image, out.image);
      writeFileSync(trajectory, out.artifacts[TRAJECTORY_ARTIFACT]!);
      parent = { params: pass.params, image, trajectory, kind: 'repaint' };
    }
    return out!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function createPainter(options: PainterOptions, hooks: PainterHooks = {}): Promise<Painter> {
  const extra = options.extra ?? {};
  const engine = Engine.open({
    modelDir: options.modelDir,
    runtime: { executionProvider: options.executionProvider, threads: options.threads },
    memoryCheck: extra.memoryCheck !== false,
    ...(extra.weights ? { weights: extra.weights as Partial<WeightForms> } : {}),
    ...(typeof extra.weightsCacheDir === 'string' ? { weightsCacheDir: extra.weightsCacheDir } : {}),
  });
  const previewEvery = typeof extra.previewEvery === 'number' ? extra.previewEvery : undefined;
  // Everything is loaded before the worker reports ready, so no user's job pays for it; the worker announces the
  // model first, so that jobs for it wait in the queue meanwhile.
  await hooks.onLoading?.({ id: engine.modelId, version: engine.version });
  await engine.warmUp();
  return {
    info: { id: engine.modelId, version: engine.version },
    async paint(request, ctx) {
      const progress = {
        onProgress: ctx.onProgress,
        signal: ctx.signal,
        ...(previewEvery !== undefined ? { previewEvery } : {}),
      };
      const out =
        request.kind === 'generate'
          ? await generateJob(engine, ragParamsOf(engine, request.params), progress)
          : request.params.repaint?.mode === 'chained'
            ? await chainedRepaintJob(engine, request, progress)
            : await (async () => {
                const { params, parent } = await repaintParamsOf(engine, request);
                const files = request.parent!.artifacts;
                const kind = request.parent!.params.repaint !== undefined || isRepaint(parent) ? 'repaint' : 'generate';
                return repaintJob(
                  engine,
                  params,
                  { params: parent, image: files['image.png'], trajectory: files[TRAJECTORY_ARTIFACT], kind },
                  progress,
                );
              })();
      return { png: out.image, artifacts: out.artifacts };
    },
    close: () => engine.close(),
  };
}
