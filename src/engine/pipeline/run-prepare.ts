/**
 * Everything a run needs before its first step (RAG-SPEC.md Appendix A, before the loop): the schedule from the
 * global token count, the conditioning of every stream, and the initial latents drawn in the official order:
 * global latent, each hard-binding box in list order, then the repaint box.
 */
import { performance } from 'node:perf_hooks';
import { UserError } from '../../config/errors.ts';
import { concatFloat32 } from '../float32.ts';
import { latentGeometry, latentImageIds, packLatents, textIds } from '../latents.ts';
import { flowMatchSchedule, type Schedule } from '../scheduler.ts';
import { boxIndex, srSelectors } from '../step/selectors.ts';
import type { BoxFeed, RegionFeed, SrFeed, StepFeeds, StepRunner, StreamFeed } from '../step/step-runner.ts';
import type { Conditioning } from './conditioning.ts';
import { ownSteps, storedTrajectory, type MainSource } from './main-source.ts';
import { seededNoise, type NoiseSource } from './noise-source.ts';
import type { RepaintPart, RunPlan } from './run-plan.ts';
import type { RunOptions, RunRecord } from './run-types.ts';
import { prepareLora } from './run-lora.ts';
import type { LoraRun } from '../lora/feeds.ts';

/** The repaint pass and its pre-pass (RAG-SPEC §4). */
export interface RepaintStreams {
  /** R: the pre-pass runs steps 0..R−1 on the mask's bounding box; the repaint pass runs from step R on. */
  from: number;
  /** The repaint pass's conditioning and mask; its latents are Z, fed anew every step. */
  pass: Omit<NonNullable<StepFeeds['repaint']>, 'latents'>;
  /** 1 = repaint token (the full-grid token mask; the same tokens as the bbox-cropped mask). */
  inside: Uint8Array;
  mask: RepaintPart['mask'];
  prepass: RegionFeed;
  /** Z, the repaint pass's latents: x with the pre-pass pasted inside the mask at step R, then its own. */
  z?: Float32Array;
}

export interface PreparedRun {
  plan: RunPlan;
  runner: StepRunner;
  schedule: Schedule;
  /** Values per packed latent token (64) and the token grid's columns. */
  width: number;
  gridCols: number;
  /** The inputs every step shares. */
  shared: Pick<StepFeeds, 'guidance' | 'imgIds' | 'txtIds'>;
  /** The main pass: its conditioning and where its latents x come from. */
  main: { feed: Omit<StreamFeed, 'latents'>; source: MainSource };
  /** Hard-binding boxes, each with its own latents (none in stored mode or with HB_replace −1). */
  boxes: BoxFeed[];
  /** Steps on which the boxes run through the model: min(r, steps); their latents are pasted into x at 0..r. */
  hbSteps: number;
  sr?: SrFeed;
  repaint?: RepaintStreams;
  /** The styles' feeds, built before the first step. */
  lora?: LoraRun;
  encodeMs: number;
  /** Filled as the run goes: the painted stream's latents entering each step, and each step's wall time. */
  trajectory: Float32Array[];
  stepMs: number[];
  record?: RunRecord;
}

const CH = 16;

/** A noise draw [1, 16, 2·rows, 2·cols] as packed latents [rows·cols, 64]. */
function packedNoise(noise: Float32Array, rows: number, cols: number): Float32Array {
  return packLatents(noise, 1, CH, rows * 2, cols * 2);
}

async function t5Stack(cond: Conditioning, texts: string[]): Promise<Float32Array> {
  return concatFloat32(await Promise.all(texts.map((t) => cond.t5(t))));
}

function checkStored(plan: RunPlan, stored: Float32Array[], values: number): void {
  if (!plan.repaint) throw new Error('stored mode needs a repaint');
  if (stored.length !== plan.steps + 1 || stored.some((s) => s.length !== values)) {
    throw new UserError(
      `the parent's stored trajectory has ${stored.length} steps of ${stored[0]?.length ?? 0} values; this repaint needs ${plan.steps + 1} of ${values} (same size and steps as the parent)`,
    );
  }
  if (plan.boxes.length && plan.hbReplace >= 0)
    throw new Error('stored mode replays no hard binding: give a plan without boxes');
}

export async function prepareRun(plan: RunPlan, o: RunOptions): Promise<PreparedRun> {
  const cfg = o.steps.cfg;
  const width = cfg.inChannels;
  const geo = latentGeometry(plan.width, plan.height, cfg.inChannels / 4);
  if (o.conditioning.textLength !== plan.textLength) {
    throw new Error(`conditioning has T5 length ${o.conditioning.textLength} but the plan needs ${plan.textLength}`);
  }
  const schedule = flowMatchSchedule(o.scheduler, plan.steps, geo.tokens);
  const noise = o.noise ?? seededNoise(plan.seed, plan.repaint?.seed);
  if (o.stored) checkStored(plan, o.stored, geo.tokens * width);
  const cond = o.conditioning;
  const hbSteps = Math.min(Math.max(plan.hbReplace, 0), plan.steps);
  // Styles first: a missing file or one over the limits fails before anything is encoded or run.
  const lora = await prepareLora(plan, o.loras, o.steps, geo);

  const encodeStart = performance.now();
  const main = { txt: await cond.t5(plan.prompt2 ?? plan.prompt), pooled: await cond.clip(plan.prompt) };
  const source = o.stored
    ? storedTrajectory(o.stored)
    : ownSteps(packedNoise(noise.global([1, CH, geo.height, geo.width]), geo.rows, geo.cols));
  const boxes = o.stored || plan.hbReplace < 0 ? [] : await boxStreams(plan, noise, cond, geo.cols, hbSteps > 0);
  const sr = plan.sr && {
    txt: await t5Stack(cond, plan.sr.segments),
    delta: plan.sr.delta,
    ...srSelectors(plan.sr.maps, plan.sr.segments.length),
  };
  const repaint = plan.repaint && (await repaintStreams(plan, plan.repaint, noise, cond));
  const encodeMs = performance.now() - encodeStart;

  return {
    plan,
    runner: o.steps,
    schedule,
    width,
    gridCols: geo.cols,
    shared: {
      guidance: cfg.guidanceEmbeds ? plan.guidance : undefined,
      imgIds: latentImageIds(geo.rows, geo.cols),
      txtIds: textIds(plan.textLength),
    },
    main: { feed: main, source },
    boxes,
    hbSteps,
    ...(sr ? { sr } : {}),
    ...(repaint ? { repaint } : {}),
    ...(lora ? { lora } : {}),
    encodeMs,
    trajectory: [],
    stepMs: [],
    ...(o.record ? { record: emptyRecord() } : {}),
  };
}

/** Hard binding: each box's own noise, and its prompts when it runs through the model at all (r ≥ 1). */
async function boxStreams(
  plan: RunPlan,
  noise: NoiseSource,
  cond: Conditioning,
  gridCols: number,
  regional: boolean,
): Promise<BoxFeed[]> {
  const boxes: BoxFeed[] = [];
  for (const [k, { rect, prompt }] of plan.boxes.entries()) {
    const rows = rect.r1 - rect.r0;
    const cols = rect.c1 - rect.c0;
    boxes.push({
      latents: packedNoise(noise.box(k, [1, CH, rows * 2, cols * 2]), rows, cols),
      txt: regional ? await cond.t5(prompt) : new Float32Array(0),
      pooled: regional ? await cond.clip(prompt) : new Float32Array(0),
      imgIds: latentImageIds(rows, cols),
      index: boxIndex(rect, gridCols),
    });
  }
  return boxes;
}

/** The repaint pass (its prompts and SR segments, RAG-SPEC §4.3) and the pre-pass on the mask's bbox (§4.2). */
async function repaintStreams(
  plan: RunPlan,
  rp: RepaintPart,
  noise: NoiseSource,
  cond: Conditioning,
): Promise<RepaintStreams> {
  const { bbox } = rp.mask;
  // Outside = every token not in the bbox-cropped mask (RAG-SPEC §4.3); the full-grid token mask says the same.
  const inside = rp.mask.tokens;
  const pass = {
    txt: await cond.t5(rp.prompt2 ?? rp.prompt),
    pooled: await cond.clip(rp.prompt),
    mask: Float32Array.from(inside),
    single: rp.single,
    ...(plan.sr ? { srTxt: await t5Stack(cond, rp.srSegments ?? plan.sr.segments) } : {}),
  };
  const prepass = {
    latents: packedNoise(noise.repaint([1, CH, bbox.bh * 2, bbox.bw * 2]), bbox.bh, bbox.bw),
    txt: await cond.t5(rp.prompt2 ?? rp.hbPrompt),
    pooled: await cond.clip(rp.hbPrompt),
    imgIds: latentImageIds(bbox.bh, bbox.bw),
  };
  return { from: rp.hbReplace, pass, inside, mask: rp.mask, prepass };
}

function emptyRecord(): RunRecord {
  return {
    main: [],
    velocity: [],
    repaint: [],
    repaintVelocity: [],
    boxLatents: [],
    boxVelocity: [],
    prepass: [],
    prepassVelocity: [],
  };
}
