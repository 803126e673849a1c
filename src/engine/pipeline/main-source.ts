/**
 * Where the main pass's latents x come from, step by step: its own Euler steps from the initial noise, or, in
 * stored mode (edits of edits, trajectory.ts), the parent's stored trajectory, replayed without stepping.
 */
import { eulerStep } from '../scheduler.ts';

export interface MainSource {
  /** Stored mode: x replays a stored trajectory; the main pass's velocity is never applied. */
  readonly stored: boolean;
  /** x as it stands: entering the current step, or after it once advance() was called. */
  readonly latents: Float32Array;
  /** x entering step i (hard binding may still paste box rows into it before the step runs). */
  enter(i: number): Float32Array;
  /** x after step i; returns the preview of the step: the estimate of the clean latent. */
  advance(i: number, velocity: Float32Array, sigma: number, sigmaNext: number): () => Float32Array;
}

/** x starts from noise and takes an Euler step on the main pass's velocity (in place) every step. */
export function ownSteps(initial: Float32Array): MainSource {
  const x = initial;
  return {
    stored: false,
    latents: x,
    enter: () => x,
    advance(_i, velocity, sigma, sigmaNext) {
      const before = x.slice();
      eulerStep(x, velocity, sigma, sigmaNext, x);
      return () => cleanEstimate(before, velocity, sigma);
    },
  };
}

/** x is the stored trajectory: step i enters with entry i and leaves with entry i + 1 (copies, never aliased). */
export function storedTrajectory(stored: Float32Array[]): MainSource {
  let x = stored[0]!.slice();
  return {
    stored: true,
    get latents() {
      return x;
    },
    enter(i) {
      x = stored[i]!.slice();
      return x;
    },
    advance(i) {
      const after = (x = stored[i + 1]!.slice());
      return () => after.slice();
    },
  };
}

/** The flow-matching estimate of the clean latent: x − σ·v. */
export function cleanEstimate(x: Float32Array, v: Float32Array, sigma: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! - sigma * v[i]!;
  return out;
}
