/**
 * The denoising loop of RAG (RAG-SPEC.md Appendix A) with every step one run() of the step graph:
 *
 *   draw noise (global, boxes, repaint box); sigmas from the global token count
 *   for i in 0..N−1:
 *     i ≤ r: paste the box latents into x                       (hard binding, latent part)
 *     i = R: Z ← x with the repaint pre-pass latent pasted inside the mask
 *     one run(): main pass on x (+ SR; + box streams injected if i < r) (+ repaint pass on Z if i ≥ R, forced to
 *                the main pass outside the mask) (+ repaint pre-pass stream if i < R)
 *     Euler for every stream; i ≥ R: Z ← x outside the mask
 *
 * Stored mode (edits of edits, see trajectory.ts): the main pass runs on a stored trajectory of the parent
 * instead of its own Euler steps; only the capture points of that pass are used, so a repaint costs at most two
 * transformer passes per step however long the lineage is.
 */
import { performance } from 'node:perf_hooks';
import { UserError } from '../../config/errors.ts';
import { concatFloat32 } from '../float32.ts';
import { eulerStep, flowMatchSchedule, type Schedule, type SchedulerConfig } from '../scheduler.ts';
import { latentGeometry, latentImageIds, packLatents, textIds } from '../latents.ts';
import {
  modelTimestep,
  type BoxFeed,
  type RegionFeed,
  type StepFeeds,
  type StepRunner,
  type StreamFeed,
} from '../step/step-runner.ts';
import { boxIndex, copyRowsWhere, pasteRows, srSelectors } from '../step/selectors.ts';
import type { Conditioning } from './conditioning.ts';
import { seededNoise, type NoiseSource } from './noise-source.ts';
import type { RunPlan } from './run-plan.ts';

export interface StepEvent {
  /** Steps done (1-based) and the total. */
  step: number;
  total: number;
  /** Wall time of this step's run(), ms. */
  ms: number;
  /** The current estimate of the clean latent (x − σ·v) of the stream being painted, packed [tokens, 64]. */
  preview(): Float32Array;
}

export interface RunOptions {
  steps: StepRunner;
  conditioning: Conditioning;
  scheduler: SchedulerConfig;
  /** Default: our seeded generator from plan.seed (and the repaint seed). */
  noise?: NoiseSource;
  /**
   * Stored mode: the parent's trajectory (latents entering each step, plus the final one). The main pass then
   * runs on these latents (its prompts are the plan's) and does not step itself. Needs plan.repaint.
   */
  stored?: Float32Array[];
  /** Awaited after every step (previews may be encoded here). */
  onStep?(e: StepEvent): void | Promise<void>;
  signal?: AbortSignal;
  /** Keep every stream's per-step inputs and velocities (tests, debug). */
  record?: boolean;
}

export interface RunRecord {
  /** Main pass: latents entering each step and its velocity (empty before R in stored mode: not computed). */
  main: Float32Array[];
  velocity: Float32Array[];
  /** Repaint pass (undefined before R). */
  repaint: (Float32Array | undefined)[];
  repaintVelocity: (Float32Array | undefined)[];
  /** Per step, each box stream's latents and velocity (empty after the HB steps). */
  boxLatents: Float32Array[][];
  boxVelocity: Float32Array[][];
  /** Repaint pre-pass: latents and velocity (undefined from R on). */
  prepass: (Float32Array | undefined)[];
  prepassVelocity: (Float32Array | undefined)[];
}

export interface RunResult {
  /** Final packed latents of the main pass [tokens, 64] (the original image when repainting). */
  latents: Float32Array;
  /** Final packed latents of the repaint pass. */
  repaintLatents?: Float32Array;
  /**
   * The trajectory of the painted stream: latents entering each step and the final one (steps + 1 entries). For a
   * repaint: the main pass's before R, the repaint pass's from R on. What a later repaint needs (trajectory.ts).
   */
  trajectory: Float32Array[];
  schedule: Schedule;
  /** Wall time of each step's run() (the transformer alone: no session creation, no text encoding). */
  stepMs: number[];
  /** Wall time of the text conditioning before the first step (encoder sessions opened on first use included). */
  encodeMs: number;
  record?: RunRecord;
}

export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

const CH = 16;

function packedNoise(noise: Float32Array, rows: number, cols: number): Float32Array {
  return packLatents(noise, 1, CH, rows * 2, cols * 2);
}

async function t5Stack(cond: Conditioning, texts: string[]): Promise<Float32Array> {
  return concatFloat32(await Promise.all(texts.map((t) => cond.t5(t))));
}

export async function runPlan(plan: RunPlan, o: RunOptions): Promise<RunResult> {
  const cfg = o.steps.cfg;
  const width = cfg.inChannels;
  const geo = latentGeometry(plan.width, plan.height, cfg.inChannels / 4);
  const N = geo.tokens;
  if (o.conditioning.textLength !== plan.textLength) {
    throw new Error(`conditioning has T5 length ${o.conditioning.textLength} but the plan needs ${plan.textLength}`);
  }
  const schedule = flowMatchSchedule(o.scheduler, plan.steps, N);
  const noise = o.noise ?? seededNoise(plan.seed, plan.repaint?.seed);
  const rp = plan.repaint;
  const stored = o.stored;
  if (stored) {
    if (!rp) throw new Error('stored mode needs a repaint');
    if (stored.length !== plan.steps + 1 || stored.some((s) => s.length !== N * width)) {
      throw new UserError(
        `the parent's stored trajectory has ${stored.length} steps of ${stored[0]?.length ?? 0} values; this repaint needs ${plan.steps + 1} of ${N * width} (same size and steps as the parent)`,
      );
    }
    if (plan.boxes.length && plan.hbReplace >= 0)
      throw new Error('stored mode replays no hard binding: give a plan without boxes');
  }
  const L = plan.textLength;
  const txtIds = textIds(L);
  const imgIds = latentImageIds(geo.rows, geo.cols);
  const guidance = cfg.guidanceEmbeds ? plan.guidance : undefined;

  // Conditioning of every stream.
  const encodeStart = performance.now();
  const mainFeed = async (latents: Float32Array): Promise<StreamFeed> => ({
    latents,
    txt: await o.conditioning.t5(plan.prompt2 ?? plan.prompt),
    pooled: await o.conditioning.clip(plan.prompt),
  });
  const main = await mainFeed(new Float32Array(0));
  const r = plan.hbReplace;
  const hbSteps = Math.min(Math.max(r, 0), plan.steps);
  const boxes: (BoxFeed & { rows: number; cols: number })[] = [];
  let x = stored ? stored[0]!.slice() : packedNoise(noise.global([1, CH, geo.height, geo.width]), geo.rows, geo.cols);
  if (!stored && r >= 0) {
    for (const [k, b] of plan.boxes.entries()) {
      const rows = b.rect.r1 - b.rect.r0;
      const cols = b.rect.c1 - b.rect.c0;
      const latents = packedNoise(noise.box(k, [1, CH, rows * 2, cols * 2]), rows, cols);
      const regional = hbSteps > 0;
      boxes.push({
        rows,
        cols,
        latents,
        txt: regional ? await o.conditioning.t5(b.prompt) : new Float32Array(0),
        pooled: regional ? await o.conditioning.clip(b.prompt) : new Float32Array(0),
        imgIds: latentImageIds(rows, cols),
        index: boxIndex(b.rect, geo.cols),
      });
    }
  }
  const sel = plan.sr ? srSelectors(plan.sr.maps, plan.sr.segments.length) : undefined;
  const srTxt = plan.sr ? await t5Stack(o.conditioning, plan.sr.segments) : undefined;

  let repaint: (StreamFeed & { srTxt?: Float32Array; mask: Float32Array; single: boolean }) | undefined;
  let prepass: RegionFeed | undefined;
  let inside: Uint8Array | undefined;
  let Z: Float32Array | undefined;
  if (rp) {
    const { bbox } = rp.mask;
    // Outside = every token not in the bbox-cropped mask (RAG-SPEC §4.3); the full-grid token mask says the same.
    inside = rp.mask.tokens;
    repaint = {
      latents: new Float32Array(0),
      txt: await o.conditioning.t5(rp.prompt2 ?? rp.prompt),
      pooled: await o.conditioning.clip(rp.prompt),
      mask: Float32Array.from(inside),
      single: rp.single,
      ...(plan.sr ? { srTxt: await t5Stack(o.conditioning, rp.srSegments ?? plan.sr.segments) } : {}),
    };
    prepass = {
      latents: packedNoise(noise.repaint([1, CH, bbox.bh * 2, bbox.bw * 2]), bbox.bh, bbox.bw),
      txt: await o.conditioning.t5(rp.prompt2 ?? rp.hbPrompt),
      pooled: await o.conditioning.clip(rp.hbPrompt),
      imgIds: latentImageIds(bbox.bh, bbox.bw),
    };
  }

  const encodeMs = performance.now() - encodeStart;
  const trajectory: Float32Array[] = [];
  const stepMs: number[] = [];
  const rec: RunRecord | undefined = o.record
    ? {
        main: [],
        velocity: [],
        repaint: [],
        repaintVelocity: [],
        boxLatents: [],
        boxVelocity: [],
        prepass: [],
        prepassVelocity: [],
      }
    : undefined;

  for (let i = 0; i < plan.steps; i++) {
    if (o.signal?.aborted) throw new CancelledError();
    const sigma = schedule.sigmas[i]!;
    const sigmaNext = schedule.sigmas[i + 1]!;
    if (stored) x = stored[i]!.slice();
    else if (i <= r) for (const b of boxes) pasteRows(x, b.latents, b.index, width);
    if (rp && i === rp.hbReplace) {
      Z = x.slice();
      const { bbox, crop } = rp.mask;
      for (let rr = 0; rr < bbox.bh; rr++) {
        for (let cc = 0; cc < bbox.bw; cc++) {
          if (!crop[rr * bbox.bw + cc]) continue;
          const t = (bbox.n0 + rr) * geo.cols + bbox.m0 + cc;
          Z.set(prepass!.latents.subarray((rr * bbox.bw + cc) * width, (rr * bbox.bw + cc + 1) * width), t * width);
        }
      }
    }
    const repaintOn = rp !== undefined && i >= rp.hbReplace;
    const prepassOn = rp !== undefined && i < rp.hbReplace;
    const hbOn = !stored && i < hbSteps && boxes.length > 0;
    trajectory.push((repaintOn ? Z! : x).slice());

    const feeds: StepFeeds = {
      timestep: modelTimestep(schedule.timesteps[i]!),
      guidance,
      imgIds,
      txtIds,
      main: { ...main, latents: x },
    };
    if (stored && prepassOn) {
      // Before R a stored-mode repaint has nothing to compute but its pre-pass: run it as a plain stream.
      feeds.main = prepass!;
      feeds.imgIds = prepass!.imgIds;
    } else {
      if (sel && srTxt) feeds.sr = { txt: srTxt, delta: plan.sr!.delta, sources: sel.sources, place: sel.place };
      if (hbOn) feeds.boxes = boxes;
      if (repaintOn) feeds.repaint = { ...repaint!, latents: Z! };
      if (prepassOn) feeds.prepass = prepass;
    }
    const out = await o.steps.run(feeds);
    stepMs.push(out.ms);
    if (rec) {
      rec.main.push(x.slice());
      rec.velocity.push(stored && prepassOn ? new Float32Array(0) : out.velocity);
      rec.repaint.push(repaintOn ? Z!.slice() : undefined);
      rec.repaintVelocity.push(out.repaint);
      rec.boxLatents.push(hbOn ? boxes.map((b) => b.latents.slice()) : []);
      rec.boxVelocity.push(hbOn ? out.boxes : []);
      rec.prepass.push(prepassOn ? prepass!.latents.slice() : undefined);
      rec.prepassVelocity.push(prepassOn ? (stored ? out.velocity : out.prepass) : undefined);
    }

    if (hbOn) boxes.forEach((b, k) => eulerStep(b.latents, out.boxes[k]!, sigma, sigmaNext, b.latents));
    if (prepassOn)
      eulerStep(prepass!.latents, stored ? out.velocity : out.prepass!, sigma, sigmaNext, prepass!.latents);
    let xPrev = x;
    if (stored) {
      x = stored[i + 1]!.slice();
    } else {
      xPrev = x.slice();
      eulerStep(x, out.velocity, sigma, sigmaNext, x);
    }
    if (repaintOn) {
      const zPrev = Z!.slice();
      eulerStep(Z!, out.repaint!, sigma, sigmaNext, Z!);
      copyRowsWhere(Z!, x, inside!, 0, width);
      await o.onStep?.({ step: i + 1, total: plan.steps, ms: out.ms, preview: () => x0(zPrev, out.repaint!, sigma) });
    } else {
      const v = stored ? undefined : out.velocity;
      await o.onStep?.({
        step: i + 1,
        total: plan.steps,
        ms: out.ms,
        preview: () => (v ? x0(xPrev, v, sigma) : x.slice()),
      });
    }
  }
  const final = rp ? Z! : x;
  trajectory.push(final.slice());
  return {
    latents: x,
    ...(rp ? { repaintLatents: Z! } : {}),
    trajectory,
    schedule,
    stepMs,
    encodeMs,
    ...(rec ? { record: rec } : {}),
  };
}

/** The flow-matching estimate of the clean latent: x − σ·v. */
function x0(x: Float32Array, v: Float32Array, sigma: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! - sigma * v[i]!;
  return out;
}
