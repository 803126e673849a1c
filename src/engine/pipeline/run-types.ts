/** What a run takes and gives back (runPlan in run.ts); shared by its prepare and step modules. */
import type { Schedule, SchedulerConfig } from '../scheduler.ts';
import type { StepRunner } from '../step/step-runner.ts';
import type { Conditioning } from './conditioning.ts';
import type { NoiseSource } from './noise-source.ts';
import type { LoraLibrary } from '../lora/library.ts';

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
  /** Where the plan's LoRA files are read and kept (required when the plan has styles). */
  loras?: LoraLibrary;
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
  /** The styles painted with: each distinct (file, scale) and the file's SHA-256, for the generation's record. */
  styles?: { name: string; scale: number; sha256: string }[];
  record?: RunRecord;
}
