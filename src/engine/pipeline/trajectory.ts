/**
 * Edits of edits: what a generation stores so that it can be repainted later at a bounded cost.
 *
 * Upstream's repaint re-runs the parent generation from its noise in lock-step with the repaint pass (the
 * parent's hidden states at the capture points force the repaint pass outside the mask). That is exact for a
 * first generation, and this engine does the same there ("exact mode"). But a parent that is itself a repaint
 * was produced by two passes, whose first was its own parent's... so the exact replay grows with the lineage.
 *
 * Stored mode: every generation stores its trajectory, the packed latents entering each step plus the final
 * one, in float16 (`trajectory.safetensors`, ≈ (steps + 1) × tokens × 64 × 2 bytes: 10.8 MB at 1024², 20
 * steps), together with its own effective conditioning (for a repaint: its Repainting_prompt and
 * Repainting_SR_prompt; the same cells and δ). Repainting it then runs, per step i ≥ R, two passes in one run():
 * the parent pass — the parent's conditioning on its stored latents x_i — only for its capture points, and the
 * repaint pass forced to it outside the mask; outside the mask Z_{i+1} takes the stored x_{i+1}. Before R only the
 * repaint pre-pass runs. So any generation, however deep, is repainted with at most two passes per step.
 *
 * How it differs from the exact mode: (1) the parent pass sees its latents rounded to float16 (≈ 5e-4 relative);
 * (2) it is recomputed with the parent's own prompts only: where the parent was itself forced by its parent
 * (outside its mask) and where hard binding injected regional rows (first generations during HB steps), the
 * recomputed hidden states differ from the ones that produced the parent. The repaint therefore sees slightly
 * different context features; its outside-mask latents still follow the parent's stored trajectory step by
 * step, and the final image is composited with the parent's pixels outside the dilated mask, so everything
 * outside it is the parent's image exactly.
 */
import { existsSync } from 'node:fs';
import { UserError } from '../../config/errors.ts';
import type { RunPlan } from './run-plan.ts';
import { concatFloat32 } from '../float32.ts';
import { float32ToF16Array, f16ToFloat32Array } from '../weights/dtype.ts';
import { encodeSafetensors, SafetensorsFile } from '../weights/safetensors.ts';

export const TRAJECTORY_ARTIFACT = 'trajectory.safetensors';
const FORMAT = 'scenewright-trajectory-1';

/** The conditioning of the pass that painted a generation, as a later repaint replays it. */
export interface StoredConditioning {
  prompt: string;
  prompt2?: string;
  /** SR segments of this pass (absent when SR was off). */
  srSegments?: string[];
  srRatio?: string;
  srDelta: number;
  guidance: number;
  textLength: number;
}

export interface Trajectory {
  width: number;
  height: number;
  steps: number;
  /** steps + 1 packed latents [tokens, 64]. */
  latents: Float32Array[];
  conditioning: StoredConditioning;
  /** How the generation was made, for messages: 'generate' or 'repaint'. */
  kind: 'generate' | 'repaint';
  /** The model id and engine version that painted it. */
  model: string;
}

export function encodeTrajectory(t: Trajectory): Uint8Array {
  const tokens = (t.width / 16) * (t.height / 16);
  const per = t.latents[0]?.length ?? 0;
  if (t.latents.length !== t.steps + 1 || per === 0 || per % tokens !== 0 || t.latents.some((l) => l.length !== per)) {
    throw new Error(`trajectory: expected ${t.steps + 1} latents of ${tokens} tokens`);
  }
  const all = concatFloat32(t.latents);
  const buf = encodeSafetensors(
    { latents: { dtype: 'float16', shape: [t.latents.length, tokens, per / tokens], data: float32ToF16Array(all) } },
    {
      format: FORMAT,
      width: String(t.width),
      height: String(t.height),
      steps: String(t.steps),
      kind: t.kind,
      model: t.model,
      conditioning: JSON.stringify(t.conditioning),
    },
  );
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function readTrajectory(file: string): Trajectory {
  if (!existsSync(file))
    throw new UserError(
      `${file} is missing: the parent has no stored trajectory (it was painted by an older engine); repaint its original instead`,
    );
  const f = new SafetensorsFile(file);
  const m = f.metadata;
  if (m.format !== FORMAT)
    throw new UserError(`${file} is not a scenewright trajectory (format ${JSON.stringify(m.format)})`);
  const t = f.read('latents');
  const [count, tokens, width] = t.shape as [number, number, number];
  const flat = f16ToFloat32Array(t.data as Uint16Array);
  const per = tokens * width;
  const latents = Array.from({ length: count }, (_, i) => flat.slice(i * per, (i + 1) * per));
  return {
    width: Number(m.width),
    height: Number(m.height),
    steps: Number(m.steps),
    latents,
    conditioning: JSON.parse(m.conditioning ?? '{}') as StoredConditioning,
    kind: m.kind === 'repaint' ? 'repaint' : 'generate',
    model: m.model ?? '',
  };
}

/** What a repaint asks of the parent it replays (RunPlan fields and the engine's model id). */
export interface ReplayRequest {
  width: number;
  height: number;
  steps: number;
  guidance: number;
  textLength: number;
  sr?: { ratio: string; delta: number };
  model: string;
}

/**
 * Refuses to replay a stored trajectory under settings other than the parent's. The parent pass is recomputed on
 * the stored latents with the request's cells, δ, guidance and text length, so any difference would force the
 * repaint towards features the parent never had (silently: the shapes still fit). Names every difference.
 */
export function checkReplay(t: Trajectory, file: string, req: ReplayRequest): void {
  const c = t.conditioning;
  const ratio = (r: string | undefined) => (r === undefined ? 'none (SR off)' : JSON.stringify(r.replace(/\s+/g, '')));
  const diffs: string[] = [];
  if (t.width !== req.width || t.height !== req.height)
    diffs.push(`size ${t.width}×${t.height} (this repaint: ${req.width}×${req.height})`);
  if (t.steps !== req.steps) diffs.push(`${t.steps} steps (this repaint: ${req.steps})`);
  if (ratio(c.srRatio) !== ratio(req.sr?.ratio))
    diffs.push(`SR split ratio ${ratio(c.srRatio)} (this repaint: ${ratio(req.sr?.ratio)})`);
  if ((c.srDelta ?? 0) !== (req.sr?.delta ?? 0))
    diffs.push(`SR δ ${c.srDelta ?? 0} (this repaint: ${req.sr?.delta ?? 0})`);
  if (c.guidance !== req.guidance) diffs.push(`guidance ${c.guidance} (this repaint: ${req.guidance})`);
  if (c.textLength !== req.textLength) diffs.push(`T5 text length ${c.textLength} (this repaint: ${req.textLength})`);
  if (t.model && t.model !== req.model) diffs.push(`model ${t.model} (this engine: ${req.model})`);
  if (diffs.length === 0) return;
  throw new UserError(
    `the parent's stored trajectory (${file}) was painted with ${diffs.join(', ')}. A repaint of a repaint replays the ` +
      "parent as it was painted: keep the parent's size, steps, split ratio, δ, guidance and text length (and its model), " +
      'or paint the edited layout as a new generation',
  );
}

/**
 * The plan of a stored-mode repaint: its main pass becomes the parent's pass, with the parent's own prompts and
 * SR segments (same cells), no hard binding (the stored latents already hold it), after checkReplay.
 */
export function replayPlan(plan: RunPlan, t: Trajectory, file: string, model: string): RunPlan {
  checkReplay(t, file, { ...plan, model });
  const c = t.conditioning;
  let sr = plan.sr;
  if (sr && c.srSegments && c.srSegments.length === sr.segments.length) sr = { ...sr, segments: c.srSegments };
  return {
    ...plan,
    prompt: c.prompt,
    hbReplace: -1,
    boxes: [],
    ...(c.prompt2 ? { prompt2: c.prompt2 } : { prompt2: undefined }),
    ...(sr ? { sr } : {}),
  };
}
