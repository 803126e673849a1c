import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../config/errors.ts';

/**
 * FLUX's flow-matching Euler scheduler, computed as diffusers v0.31 `FlowMatchEulerDiscreteScheduler`
 * is driven by `FluxPipeline` (RAG-SPEC.md §1.5): float64 linspace(1, 1/N, N), the shift in float64
 * (dynamic time_shift with mu from the image token count for dev, the static `shift` for schnell),
 * then float32; a trailing 0; timesteps = float32(σ · 1000). Every float32 rounding of the reference
 * is reproduced with Math.fround, so the lists match it bit for bit.
 */
export interface SchedulerConfig {
  numTrainTimesteps: number;
  shift: number;
  useDynamicShifting: boolean;
  baseShift: number;
  maxShift: number;
  baseImageSeqLen: number;
  maxImageSeqLen: number;
}

export interface Schedule {
  /** N+1 float32 values, σ_0 = 1 … σ_{N-1}, then 0. */
  sigmas: Float32Array;
  /** N float32 values, σ_i · 1000 (what diffusers calls timesteps; the transformer gets σ_i). */
  timesteps: Float32Array;
  /** The dynamic shift, when the config uses one. */
  mu?: number;
}

/** Defaults of FlowMatchEulerDiscreteScheduler for keys a config leaves out. */
const DEFAULTS: SchedulerConfig = {
  numTrainTimesteps: 1000,
  shift: 1.0,
  useDynamicShifting: false,
  baseShift: 0.5,
  maxShift: 1.15,
  baseImageSeqLen: 256,
  maxImageSeqLen: 4096,
};

/** Reads a diffusers scheduler_config.json object (snake_case keys). */
export function parseSchedulerConfig(json: unknown, source = 'scheduler_config.json'): SchedulerConfig {
  if (!json || typeof json !== 'object') throw new UserError(`${source} is not a JSON object`);
  const o = json as Record<string, unknown>;
  const cls = o._class_name;
  if (cls !== undefined && cls !== 'FlowMatchEulerDiscreteScheduler') {
    throw new UserError(
      `${source}: scheduler "${String(cls)}" is not supported; FLUX uses FlowMatchEulerDiscreteScheduler`,
    );
  }
  const num = (key: string, fallback: number): number => {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new UserError(`${source}: "${key}" must be a number (got ${JSON.stringify(v)})`);
    return v;
  };
  const dyn = o.use_dynamic_shifting;
  if (dyn !== undefined && typeof dyn !== 'boolean')
    throw new UserError(`${source}: "use_dynamic_shifting" must be true or false`);
  const cfg: SchedulerConfig = {
    numTrainTimesteps: num('num_train_timesteps', DEFAULTS.numTrainTimesteps),
    shift: num('shift', DEFAULTS.shift),
    useDynamicShifting: dyn ?? DEFAULTS.useDynamicShifting,
    baseShift: num('base_shift', DEFAULTS.baseShift),
    maxShift: num('max_shift', DEFAULTS.maxShift),
    baseImageSeqLen: num('base_image_seq_len', DEFAULTS.baseImageSeqLen),
    maxImageSeqLen: num('max_image_seq_len', DEFAULTS.maxImageSeqLen),
  };
  if (cfg.useDynamicShifting && cfg.maxImageSeqLen === cfg.baseImageSeqLen) {
    throw new UserError(`${source}: max_image_seq_len must differ from base_image_seq_len for dynamic shifting`);
  }
  if (cfg.shift <= 0) throw new UserError(`${source}: "shift" must be positive`);
  return cfg;
}

/** Loads `<modelDir>/scheduler/scheduler_config.json`. */
export function loadSchedulerConfig(modelDir: string): SchedulerConfig {
  const file = path.join(modelDir, 'scheduler', 'scheduler_config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UserError(
      `${file} is missing: the checkpoint folder needs scheduler/scheduler_config.json (diffusers layout)`,
    );
  }
  try {
    return parseSchedulerConfig(JSON.parse(text), file);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserError(`${file} is not valid JSON: ${e.message}`);
    throw e;
  }
}

/** diffusers `calculate_shift`: linear in the image token count, not clamped (it extrapolates). */
export function calculateShift(imageSeqLen: number, cfg: SchedulerConfig): number {
  const m = (cfg.maxShift - cfg.baseShift) / (cfg.maxImageSeqLen - cfg.baseImageSeqLen);
  const b = cfg.baseShift - m * cfg.baseImageSeqLen;
  return imageSeqLen * m + b;
}

/** numpy.linspace(start, stop, n) in float64, including numpy's exact endpoint. */
function linspace(start: number, stop: number, n: number): number[] {
  if (n === 1) return [start];
  const step = (stop - start) / (n - 1);
  const out = Array.from({ length: n }, (_, i) => i * step + start);
  out[n - 1] = stop;
  return out;
}

/**
 * The sigma/timestep lists for `steps` denoising steps of an image with `imageSeqLen` packed tokens
 * ((H/16)·(W/16)); `imageSeqLen` only matters with dynamic shifting.
 */
export function flowMatchSchedule(cfg: SchedulerConfig, steps: number, imageSeqLen: number): Schedule {
  if (!Number.isInteger(steps) || steps < 1) throw new UserError(`steps must be a whole number ≥ 1 (got ${steps})`);
  if (cfg.useDynamicShifting && !(imageSeqLen > 0))
    throw new UserError(`image sequence length must be positive (got ${imageSeqLen})`);
  const lin = linspace(1.0, 1 / steps, steps);
  let shifted: number[];
  let mu: number | undefined;
  if (cfg.useDynamicShifting) {
    mu = calculateShift(imageSeqLen, cfg);
    const e = Math.exp(mu);
    shifted = lin.map((s) => e / (e + (1 / s - 1)));
  } else {
    const k = cfg.shift;
    shifted = lin.map((s) => (k * s) / (1 + (k - 1) * s));
  }
  const sigmas = new Float32Array(steps + 1);
  const timesteps = new Float32Array(steps);
  const scale = Math.fround(cfg.numTrainTimesteps);
  shifted.forEach((s, i) => {
    sigmas[i] = s;
    timesteps[i] = Math.fround(sigmas[i]! * scale);
  });
  sigmas[steps] = 0;
  return mu === undefined ? { sigmas, timesteps } : { sigmas, timesteps, mu };
}

/**
 * One Euler step of the flow ODE in float32 as diffusers does it:
 * x_next = x + (σ_next − σ) · v, with σ_next − σ rounded to float32 first.
 * Writes into `out` (which may be `sample` itself) and returns it.
 */
export function eulerStep(
  sample: Float32Array,
  modelOutput: Float32Array,
  sigma: number,
  sigmaNext: number,
  out: Float32Array = new Float32Array(sample.length),
): Float32Array {
  if (modelOutput.length !== sample.length || out.length !== sample.length) {
    throw new Error(
      `eulerStep: sample (${sample.length}), model output (${modelOutput.length}) and out (${out.length}) must have the same length`,
    );
  }
  const dt = Math.fround(Math.fround(sigmaNext) - Math.fround(sigma));
  for (let i = 0; i < sample.length; i++) out[i] = sample[i]! + Math.fround(dt * modelOutput[i]!);
  return out;
}
