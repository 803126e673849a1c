/**
 * The engine as the worker runs it: a PaintRequest's passes → PNG + artifacts.
 *
 * The passes were decided when the request was accepted (src/paint/passes.ts) and travel with the job; this
 * module only runs them: a generation's one pass, or a repaint's passes in turn over the parent's image and
 * trajectory (a first-generation parent is re-run from its noise in lock-step; a parent that is itself a
 * repaint is replayed from its stored trajectory). A job queued by an older bot carries no passes: they are
 * built here by the same module, from what it does carry.
 * Progress after every step, with a small preview PNG (linear latent → RGB map, no VAE) every few steps.
 */
import { UserError } from '../config/errors.ts';
import { Engine } from '../engine/pipeline/engine.ts';
import {
  generateJob,
  repaintPassesJob,
  type JobOutput,
  type JobProgress,
  type ParentGeneration,
} from '../engine/pipeline/jobs.ts';
import { TRAJECTORY_ARTIFACT } from '../engine/pipeline/trajectory.ts';
import type { WeightForms } from '../engine/weights/forms.ts';
import { lastPassOf, passesOf } from '../paint/stored.ts';
import { runnablePass } from '../paint/passes.ts';
import { isRepaint } from '../rag/params.ts';
import type { Painter, PainterHooks, PainterOptions, PaintRequest } from './painter.ts';

export { TRAJECTORY_ARTIFACT };

/** Runs a request's passes on an open engine. */
export async function paintRequest(engine: Engine, request: PaintRequest, o: JobProgress = {}): Promise<JobOutput> {
  const passes = (await passesOf(request, engine.modelId)).map((p, i) => runnablePass(p, `the job's pass ${i + 1}`));
  if (request.kind === 'generate') return generateJob(engine, passes[0]!, o);
  const parentInfo = request.parent;
  if (!parentInfo) throw new UserError('a repaint job needs its parent generation (request.parent)');
  const last = lastPassOf(parentInfo.params, engine.modelId);
  const parent: ParentGeneration = {
    params: runnablePass(last, "the parent's parameters"),
    image: parentInfo.artifacts['image.png'],
    trajectory: parentInfo.artifacts[TRAJECTORY_ARTIFACT],
    kind: parentInfo.params.repaint !== undefined || isRepaint(last) ? 'repaint' : 'generate',
  };
  return repaintPassesJob(engine, passes, parent, o);
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
      const out = await paintRequest(engine, request, {
        onProgress: ctx.onProgress,
        signal: ctx.signal,
        ...(previewEvery !== undefined ? { previewEvery } : {}),
      });
      return { png: out.image, artifacts: out.artifacts };
    },
    close: () => engine.close(),
  };
}
