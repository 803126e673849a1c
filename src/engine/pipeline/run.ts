/**
 * The denoising loop of RAG (RAG-SPEC.md Appendix A) with every step one run() of the step graph:
 *
 *   draw noise (global, boxes, repaint box); sigmas from the global token count          prepareRun
 *   for i in 0..N−1:                                                                       denoiseStep
 *     i ≤ r: paste the box latents into x                       (hard binding, latent part)
 *     i = R: Z ← x with the repaint pre-pass latent pasted inside the mask
 *     one run(): main pass on x (+ SR; + box streams injected if i < r) (+ repaint pass on Z if i ≥ R, forced to
 *                the main pass outside the mask) (+ repaint pre-pass stream if i < R)
 *     Euler for every stream; i ≥ R: Z ← x outside the mask
 *
 * Stored mode (edits of edits, see trajectory.ts): the main pass runs on a stored trajectory of the parent
 * instead of its own Euler steps (main-source.ts); only the capture points of that pass are used, so a repaint
 * costs at most two transformer passes per step however long the lineage is.
 */
import { prepareRun } from './run-prepare.ts';
import { denoiseStep } from './run-step.ts';
import type { RunOptions, RunResult } from './run-types.ts';
import type { RunPlan } from './run-plan.ts';

export type { RunOptions, RunRecord, RunResult, StepEvent } from './run-types.ts';

export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

export async function runPlan(plan: RunPlan, o: RunOptions): Promise<RunResult> {
  const run = await prepareRun(plan, o);
  for (let i = 0; i < plan.steps; i++) {
    if (o.signal?.aborted) throw new CancelledError();
    await denoiseStep(run, i, o.onStep);
  }
  const x = run.main.source.latents;
  const z = run.repaint?.z;
  if (run.repaint && !z) throw new Error(`internal error: the repaint pass never started (R = ${run.repaint.from})`);
  run.trajectory.push((z ?? x).slice());
  return {
    latents: x,
    ...(z ? { repaintLatents: z } : {}),
    trajectory: run.trajectory,
    schedule: run.schedule,
    stepMs: run.stepMs,
    encodeMs: run.encodeMs,
    ...(run.lora
      ? { styles: run.lora.entries.map((e) => ({ name: e.name, scale: e.scale, sha256: e.file.sha256 })) }
      : {}),
    ...(run.record ? { record: run.record } : {}),
  };
}
