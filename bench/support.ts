import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Graph } from '../src/engine/onnx/graph.ts';
import { createSession, ort, type RuntimeOptions } from '../src/engine/runtime/session.ts';
import { makeTinyModel, writeTinyModel } from '../src/engine/tiny-model/make.ts';
import type { Variant } from '../src/engine/tiny-model/presets.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The `bench` preset checkpoint, written once under .tmp/ (about 0.4 GB) and reused by later runs. */
export function benchCheckpoint(variant: Variant = 'dev'): string {
  const out = path.join(repoRoot, '.tmp', `bench-model-${variant}`);
  if (!existsSync(path.join(out, 'model_index.json'))) {
    process.stderr.write(`writing the bench checkpoint to ${out} (once)...\n`);
    makeTinyModel({
      out,
      preset: 'bench',
      variant,
      seed: 7,
      force: true,
      progress: (m) => process.stderr.write(`  ${m}\n`),
    });
  }
  return out;
}

/** The `wide` preset (FLUX.1's real width, 1 double + 2 single blocks), schnell, written once under .tmp/ (1.3 GB). */
export async function wideCheckpoint(): Promise<string> {
  const out = path.join(repoRoot, '.tmp', 'wide-model-schnell');
  if (!existsSync(path.join(out, 'model_index.json'))) {
    process.stderr.write(`writing the wide checkpoint to ${out} (once, about 1.3 GB)...\n`);
    await writeTinyModel({
      out,
      preset: 'wide',
      variant: 'schnell',
      seed: 7,
      force: true,
      progress: (m) => process.stderr.write(`  ${m}\n`),
    });
  }
  return out;
}

export function runtimeFromEnv(): RuntimeOptions {
  const ep = (process.env.EXECUTION_PROVIDER ?? 'cpu') as RuntimeOptions['executionProvider'];
  return { executionProvider: ep, threads: Number(process.env.ORT_THREADS ?? 0) };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `fn` `warm` times unmeasured, then `reps` times; returns the median wall time in ms. */
export async function timeMs(fn: () => Promise<unknown>, reps: number, warm = 1): Promise<number> {
  for (let i = 0; i < warm; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * The GEMM throughput ONNX Runtime reaches here: float32 MatMul at the step's own shapes (tokens × width ×
 * 4·width, the MLP's up-projection, which dominates a FLUX block), best of the shapes tried, in FLOP/s.
 */
export async function gemmThroughput(
  rows: number,
  width: number,
  runtime: RuntimeOptions,
): Promise<{ flops: number; shape: string }> {
  let best = { flops: 0, shape: '' };
  for (const [m, k, n] of [
    [rows, width, 4 * width],
    [rows, width, 3 * width],
    [rows, 4 * width, width],
  ] as const) {
    const g = new Graph('gemm');
    const a = g.input('a', 'float32', [m, k]);
    const b = g.input('b', 'float32', [k, n]);
    g.output(g.op('MatMul', [a, b]), 'y');
    const { session } = await createSession(g, runtime);
    const feeds = {
      a: new ort.Tensor(
        'float32',
        Float32Array.from({ length: m * k }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5),
        [m, k],
      ),
      b: new ort.Tensor(
        'float32',
        Float32Array.from({ length: k * n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5),
        [k, n],
      ),
    };
    const ms = await timeMs(() => session.run(feeds), 7, 2);
    await session.release();
    const flops = (2 * m * k * n) / (ms / 1000);
    if (flops > best.flops) best = { flops, shape: `${m}×${k}·${k}×${n}` };
  }
  return best;
}

export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export function fmt(x: number, digits = 2): string {
  return x.toFixed(digits);
}
