/**
 * One denoising step of RAG (RAG-SPEC.md Appendix A, inside the loop): one run() of the step graph for every
 * stream the step carries, then an Euler step for each.
 */
import { eulerStep } from '../scheduler.ts';
import { copyRowsWhere, pasteCropWhere, pasteRows } from '../step/selectors.ts';
import { modelTimestep, type StepFeeds, type StepOutputs } from '../step/step-runner.ts';
import { cleanEstimate } from './main-source.ts';
import type { PreparedRun, RepaintStreams } from './run-prepare.ts';
import type { RunOptions, RunRecord } from './run-types.ts';
import { stepLora } from './run-lora.ts';

/** Which streams step i carries besides the main pass. */
interface Phase {
  /** Hard binding in the model: the boxes run and their rows are pasted at every capture point (i < r). */
  hb: boolean;
  /** The repaint pass, on Z (i ≥ R). */
  repaint: boolean;
  /** The repaint pre-pass on the mask's bounding box (i < R). */
  prepass: boolean;
}

function phaseOf(run: PreparedRun, i: number): Phase {
  const R = run.repaint?.from;
  return {
    hb: i < run.hbSteps && run.boxes.length > 0,
    repaint: R !== undefined && i >= R,
    prepass: R !== undefined && i < R,
  };
}

export async function denoiseStep(run: PreparedRun, i: number, onStep: RunOptions['onStep']): Promise<void> {
  const { plan, schedule, width, repaint } = run;
  const sigma = schedule.sigmas[i]!;
  const sigmaNext = schedule.sigmas[i + 1]!;
  const on = phaseOf(run, i);

  const x = run.main.source.enter(i);
  // Hard binding, latent part: the box latents replace their rows of x (steps 0..r).
  if (i <= plan.hbReplace) for (const b of run.boxes) pasteRows(x, b.latents, b.index, width);
  if (repaint && i === repaint.from) repaint.z = startRepaint(x, repaint, run.gridCols, width);
  const z = on.repaint ? repaint?.z : undefined;
  run.trajectory.push((z ?? x).slice());

  const out = await run.runner.run(stepFeeds(run, i, x, z, on));
  run.stepMs.push(out.ms);
  // Before R a stored-mode repaint runs its pre-pass as the main stream (see stepFeeds).
  const prepassVelocity = run.main.source.stored ? out.velocity : out.prepass;
  if (run.record) recordStep(run.record, run, x, z, on, out, prepassVelocity);

  // Euler for every stream.
  if (on.hb) run.boxes.forEach((b, k) => eulerStep(b.latents, out.boxes[k]!, sigma, sigmaNext, b.latents));
  if (on.prepass && repaint) {
    const pre = repaint.prepass.latents;
    eulerStep(pre, produced(prepassVelocity, 'pre-pass'), sigma, sigmaNext, pre);
  }
  const preview = run.main.source.advance(i, out.velocity, sigma, sigmaNext);
  if (z && repaint) {
    const v = produced(out.repaint, 'repaint pass');
    const before = z.slice();
    eulerStep(z, v, sigma, sigmaNext, z);
    // Outside the mask the repaint pass is the main pass (RAG-SPEC §4.3).
    copyRowsWhere(z, run.main.source.latents, repaint.inside, 0, width);
    await onStep?.({ step: i + 1, total: plan.steps, ms: out.ms, preview: () => cleanEstimate(before, v, sigma) });
  } else {
    await onStep?.({ step: i + 1, total: plan.steps, ms: out.ms, preview });
  }
}

function produced(velocity: Float32Array | undefined, stream: string): Float32Array {
  if (!velocity) throw new Error(`internal error: the step graph gave no velocity for the ${stream}`);
  return velocity;
}

/** Z at step R: x with the pre-pass latents pasted inside the mask (RAG-SPEC §4.2). */
function startRepaint(x: Float32Array, rp: RepaintStreams, gridCols: number, width: number): Float32Array {
  const z = x.slice();
  pasteCropWhere(z, rp.prepass.latents, rp.mask.bbox, rp.mask.crop, gridCols, width);
  return z;
}

function stepFeeds(run: PreparedRun, i: number, x: Float32Array, z: Float32Array | undefined, on: Phase): StepFeeds {
  const feeds: StepFeeds = {
    timestep: modelTimestep(run.schedule.timesteps[i]!),
    ...run.shared,
    main: { latents: x, ...run.main.feed },
  };
  const rp = run.repaint;
  if (rp && on.prepass && run.main.source.stored) {
    // Before R a stored-mode repaint has nothing to compute but its pre-pass: run it as a plain stream.
    const tokens = rp.prepass.imgIds.length / 3;
    return {
      ...feeds,
      imgIds: rp.prepass.imgIds,
      main: rp.prepass,
      ...(run.lora
        ? { lora: stepLora(run.lora, { boxes: false, prepass: false, repaint: false, prepassAsMain: tokens }) }
        : {}),
    };
  }
  if (run.sr) feeds.sr = run.sr;
  if (on.hb) feeds.boxes = run.boxes;
  if (rp && z) feeds.repaint = { latents: z, ...rp.pass };
  if (rp && on.prepass) feeds.prepass = rp.prepass;
  if (run.lora) feeds.lora = stepLora(run.lora, { boxes: on.hb, prepass: !!(rp && on.prepass), repaint: !!(rp && z) });
  return feeds;
}

/** The latents entering the step and the velocities it produced, per stream (before the Euler steps). */
function recordStep(
  rec: RunRecord,
  run: PreparedRun,
  x: Float32Array,
  z: Float32Array | undefined,
  on: Phase,
  out: StepOutputs,
  prepassVelocity: Float32Array | undefined,
): void {
  const storedPrepass = run.main.source.stored && on.prepass;
  rec.main.push(x.slice());
  rec.velocity.push(storedPrepass ? new Float32Array(0) : out.velocity);
  rec.repaint.push(z?.slice());
  rec.repaintVelocity.push(out.repaint);
  rec.boxLatents.push(on.hb ? run.boxes.map((b) => b.latents.slice()) : []);
  rec.boxVelocity.push(on.hb ? out.boxes : []);
  rec.prepass.push(on.prepass ? run.repaint?.prepass.latents.slice() : undefined);
  rec.prepassVelocity.push(on.prepass ? prepassVelocity : undefined);
}
