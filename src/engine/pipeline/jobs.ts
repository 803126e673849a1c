/**
 * Whole jobs on an Engine, shared by the painter (worker) and the CLI: a generation from RAG parameters, and a
 * repaint of a parent generation (exact mode for a first generation, stored mode for a repaint; trajectory.ts).
 * Each returns the PNG, the artifacts a later repaint needs and the run's numbers.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { UserError } from '../../config/errors.ts';
import { isRepaint, type RagParams } from '../../rag/params.ts';
import { latentGeometry } from '../latents.ts';
import type { Engine, PaintResult } from './engine.ts';
import {
  compositeOutside,
  encodeImage,
  readRgb8,
  repaintPixels,
  toRgb8,
  type ImageFormat,
  type Rgb8,
} from './image.ts';
import type { NoiseSource } from './noise-source.ts';
import { maskSource, type RunPlan } from './run-plan.ts';
import {
  encodeTrajectory,
  readTrajectory,
  replayPlan,
  TRAJECTORY_ARTIFACT,
  type StoredConditioning,
} from './trajectory.ts';

export interface JobProgress {
  /** Called after every step; `previewPng` every `previewEvery` steps (never on the last one). */
  onProgress?(step: number, total: number, previewPng?: Uint8Array, stepMs?: number): void;
  signal?: AbortSignal;
  /** Steps between previews; default about five previews per run. 0 = none. */
  previewEvery?: number;
  noise?: NoiseSource;
  /** Folder a relative Repainting_mask is resolved against. */
  baseDir?: string;
  format?: ImageFormat;
}

export interface JobOutput {
  image: Uint8Array;
  rgb: Rgb8;
  artifacts: Record<string, Uint8Array>;
  plan: RunPlan;
  result: PaintResult;
  /** generate; repaint-exact (parent re-run from its noise); repaint-stored (parent's stored trajectory). */
  mode: 'generate' | 'repaint-exact' | 'repaint-stored';
}

/** The conditioning of the pass whose image a generation is (stored with its trajectory). */
export function paintedConditioning(plan: RunPlan): StoredConditioning {
  const rp = plan.repaint;
  const base = {
    srRatio: plan.sr?.ratio,
    srDelta: plan.sr?.delta ?? 0,
    guidance: plan.guidance,
    textLength: plan.textLength,
  };
  if (rp)
    return {
      ...base,
      prompt: rp.prompt,
      ...(rp.prompt2 ? { prompt2: rp.prompt2 } : {}),
      ...(rp.srSegments ? { srSegments: rp.srSegments } : {}),
    };
  return {
    ...base,
    prompt: plan.prompt,
    ...(plan.prompt2 ? { prompt2: plan.prompt2 } : {}),
    ...(plan.sr ? { srSegments: plan.sr.segments } : {}),
  };
}

async function paintPlan(engine: Engine, plan: RunPlan, o: JobProgress, stored?: Float32Array[]): Promise<PaintResult> {
  const geo = latentGeometry(plan.width, plan.height);
  const every = o.previewEvery ?? Math.max(1, Math.round(plan.steps / 5));
  const preview = every > 0 && o.onProgress ? await engine.preview() : undefined;
  return engine.paint(plan, {
    noise: o.noise,
    signal: o.signal,
    stored,
    async onStep(e) {
      let png: Uint8Array | undefined;
      if (preview && e.step < e.total && e.step % every === 0) png = await preview.png(e.preview(), geo.rows, geo.cols);
      o.onProgress?.(e.step, e.total, png, e.ms);
    },
  });
}

function artifacts(engine: Engine, plan: RunPlan, res: PaintResult): Record<string, Uint8Array> {
  const traj = encodeTrajectory({
    width: plan.width,
    height: plan.height,
    steps: plan.steps,
    latents: res.trajectory,
    conditioning: paintedConditioning(plan),
    kind: plan.repaint ? 'repaint' : 'generate',
    model: engine.modelId,
  });
  return { [TRAJECTORY_ARTIFACT]: traj };
}

/** A generation from RAG parameters (no Repainting_* fields). */
export async function generateJob(engine: Engine, params: RagParams, o: JobProgress = {}): Promise<JobOutput> {
  if (isRepaint(params))
    throw new UserError(
      'these parameters ask for a repaint (Repainting_* fields): paint them with a parent generation',
    );
  const plan = await engine.plan(params, o.baseDir);
  return generatePlanJob(engine, plan, o);
}

/** A generation from a ready plan (plain prompts use plainPlan). */
export async function generatePlanJob(engine: Engine, plan: RunPlan, o: JobProgress = {}): Promise<JobOutput> {
  const result = await paintPlan(engine, plan, o);
  const rgb = toRgb8(result.image);
  return {
    image: await encodeImage(rgb, o.format),
    rgb,
    artifacts: artifacts(engine, plan, result),
    plan,
    result,
    mode: 'generate',
  };
}

/** What a repaint knows of its parent. */
export interface ParentGeneration {
  /** The RAG parameters the parent was painted with (with Repainting_* when the parent is a repaint). */
  params: RagParams;
  /** The parent's image (PNG path); without it the parent's latents are decoded for the composite. */
  image?: string;
  /** The parent's trajectory artifact; required when the parent is itself a repaint. */
  trajectory?: string;
  /**
   * Whether the parent is itself a repaint; default: its parameters have Repainting_* fields. (A stored row may
   * carry only the parent's Scene; the caller knows it was a repaint.)
   */
  kind?: 'generate' | 'repaint';
}

/**
 * Repaints a parent. `params` are the parent's parameters plus the Repainting_* fields (what
 * src/paint/passes.ts builds). The final pixels outside the dilated mask are the parent's.
 */
export async function repaintJob(
  engine: Engine,
  params: RagParams,
  parent: ParentGeneration,
  o: JobProgress = {},
): Promise<JobOutput> {
  if (!isRepaint(params)) throw new UserError('a repaint needs the Repainting_* parameters (mask, prompts, seed)');
  let plan = await engine.plan(params, o.baseDir);
  let stored: Float32Array[] | undefined;
  let mode: JobOutput['mode'] = 'repaint-exact';
  if ((parent.kind ?? (isRepaint(parent.params) ? 'repaint' : 'generate')) === 'repaint') {
    // The parent is a repaint: replay its stored trajectory instead of its whole lineage.
    if (!parent.trajectory)
      throw new UserError(
        'the parent is itself a repaint and its trajectory.safetensors is missing: repaint its original instead',
      );
    const traj = readTrajectory(parent.trajectory);
    plan = replayPlan(plan, traj, parent.trajectory, engine.modelId);
    stored = traj.latents;
    mode = 'repaint-stored';
  }
  const result = await paintPlan(engine, plan, o, stored);
  let parentRgb: Rgb8;
  if (parent.image && existsSync(parent.image)) parentRgb = await readRgb8(parent.image);
  else
    parentRgb = toRgb8(
      await engine.decode(stored ? stored[stored.length - 1]! : result.latents, plan.width, plan.height),
    );
  const area = await repaintPixels(maskOf(params, o.baseDir), plan.width, plan.height);
  const rgb = compositeOutside(toRgb8(result.image), parentRgb, area);
  return {
    image: await encodeImage(rgb, o.format),
    rgb,
    artifacts: artifacts(engine, plan, result),
    plan,
    result,
    mode,
  };
}

function maskOf(p: RagParams, baseDir?: string): string | Uint8Array {
  return maskSource(p.Repainting_mask!, baseDir);
}

/**
 * Repaint passes run in turn (a repaint of several regions, one pass each): pass i repaints the image pass i−1
 * painted, pass 1 the parent's. Each pass keeps the pixels outside its own dilated mask, so outside all of them
 * the image is the parent's. Between passes the intermediate image and trajectory live in a temporary folder;
 * progress counts the passes' steps as one run. The last pass's output is returned.
 */
export async function repaintPassesJob(
  engine: Engine,
  passes: RagParams[],
  parent: ParentGeneration,
  o: JobProgress = {},
): Promise<JobOutput> {
  if (!passes.length) throw new UserError('a repaint needs at least one pass');
  if (passes.length === 1) return repaintJob(engine, passes[0]!, parent, o);
  const dir = mkdtempSync(path.join(tmpdir(), 'sw-chain-'));
  try {
    let from = parent;
    let out: JobOutput | undefined;
    for (const [i, pass] of passes.entries()) {
      const onProgress =
        o.onProgress &&
        ((step: number, total: number, png?: Uint8Array) =>
          o.onProgress!(i * total + step, passes.length * total, png));
      out = await repaintJob(engine, pass, from, { ...o, ...(onProgress ? { onProgress } : {}) });
      if (i === passes.length - 1) break;
      const image = path.join(dir, `pass-${i + 1}.png`);
      const trajectory = path.join(dir, `pass-${i + 1}-${TRAJECTORY_ARTIFACT}`);
      writeFileSync(image, out.image);
      writeFileSync(trajectory, out.artifacts[TRAJECTORY_ARTIFACT]!);
      from = { params: pass, image, trajectory, kind: 'repaint' };
    }
    return out!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
