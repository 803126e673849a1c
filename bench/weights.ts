/**
 * Weight forms at FLUX.1's real width (issue 9). On the `wide` preset (3072 = 24 × 128, 1 double + 2 single blocks,
 * 0.68 G transformer parameters) one transformer step per form, each form in its own process so that its peak RSS is
 * its own:
 *   fp32 (F32 on disk), bf16 (bf16 on disk, widened to float32 at load: "bf16 folded"), int8 and int4 (WEIGHTS=int8|int4
 *   on the bf16 files, MatMulNBits), fp8 (F8_E4M3 on disk, DequantizeLinear per run), gguf-q8_0 and gguf-q4_0
 *   (city96-style GGUF files, repacked exactly to MatMulNBits).
 * Printed per form, measured in this one run: weights preparation (cold = first load, writing the cache; warm = found
 * again), session creation, the step's median time ÷ the bf16-folded step, peak RSS ÷ the bf16-folded peak, and the
 * largest and mean absolute difference of the velocity from the fp32 graph's.
 *
 *   node --import tsx bench/weights.ts [forms…]          (EXECUTION_PROVIDER / ORT_THREADS / SIZE from the environment)
 */
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { openTransformer } from '../src/engine/graphs/flux-transformer-session.ts';
import { gaussian } from '../src/engine/noise.ts';
import { latentImageIds, textIds } from '../src/engine/latents.ts';
import { AS_STORED, PreparedCheckpoint } from '../src/engine/pipeline/weight-forms.ts';
import { writeWeightsForm, type TinyForm } from '../src/engine/tiny-model/forms.ts';
import { PREPARED_FOLDER, type WeightForm } from '../src/engine/weights/forms.ts';
import type { FluxCheckpoint } from '../src/engine/checkpoint/types.ts';
import { SafetensorsWeights } from '../src/engine/weights/named-weights.ts';
import { SafetensorsFile, writeSafetensors, type HostTensor } from '../src/engine/weights/safetensors.ts';
import { sourceToFloat32 } from '../src/engine/weights/tensor-source.ts';
import { fmt, median, peakRssMiB, repoRoot, runtimeFromEnv, wideCheckpoint } from './support.ts';

const SIZE = Number(process.env.SIZE ?? 256);
const REPS = Number(process.env.REPS ?? 3);
const ALL = ['fp32', 'bf16', 'int8', 'int4', 'fp8', 'gguf-q8_0', 'gguf-q4_0'] as const;
type Form = (typeof ALL)[number];
const work = path.join(repoRoot, '.tmp', 'bench-weights');

interface ChildResult {
  form: Form;
  run: string;
  prepareS: number;
  sessionS: number;
  stepS: number;
  peakMiB: number;
  gpuPeakMiB?: number;
  velocity: string;
  resident: number;
}

/** GPU memory in use (MiB) sampled every 100 ms while this process runs, on CUDA; undefined elsewhere. */
function gpuSampler(): { peak: () => number | undefined; stop: () => void } {
  if (runtimeFromEnv().executionProvider !== 'cuda') return { peak: () => undefined, stop: () => {} };
  let peak: number | undefined;
  const sample = () =>
    execFile('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits'], (err, out) => {
      if (!err) peak = Math.max(peak ?? 0, Number.parseFloat(out));
    });
  sample();
  const timer = setInterval(sample, 100);
  return { peak: () => peak, stop: () => clearInterval(timer) };
}

/**
 * The parity reference of a form: the fp32 graph over the weights the form's graph reads, decoded in JS (MatMulNBits
 * parts by nbits.ts's formula, fp8 by its table, GGUF blocks by ggml's definitions), written to a float32 file.
 */
function decodedInJs(ck: PreparedCheckpoint, form: Form): FluxCheckpoint {
  const w = ck.transformerWeights();
  const file = path.join(work, `${form}-jsref.safetensors`);
  const tensors: Record<string, HostTensor> = {};
  for (const n of w.names())
    tensors[n] = { dtype: 'float32', shape: w.info(n).shape, data: sourceToFloat32(w.source(n)) };
  writeSafetensors(file, tensors);
  const decoded = new SafetensorsWeights(`${form} decoded in JS`, [new SafetensorsFile(file)]);
  return {
    source: ck.source,
    layout: ck.layout,
    variant: ck.variant,
    transformerConfig: ck.transformerConfig,
    transformerWeights: () => decoded,
    component: (n) => ck.component(n),
    assetFolder: (n) => ck.assetFolder(n),
    schedulerConfig: () => ck.schedulerConfig(),
  };
}

/** One form in this process: prepare the weights, open the session, time the step, save the velocity. */
async function child(form: Form, run: string, dir: string, weights: WeightForm, cacheDir: string): Promise<void> {
  const runtime = runtimeFromEnv();
  const gpu = gpuSampler();
  const t0 = performance.now();
  const prepared = new PreparedCheckpoint(loadCheckpoint(dir), { ...AS_STORED, transformer: weights }, cacheDir, [
    path.join(dir, PREPARED_FOLDER),
  ]);
  const w = prepared.transformerWeights();
  for (const n of w.names()) w.source(n);
  const ck = run === 'jsref' ? decodedInJs(prepared, form) : prepared;
  const prepareS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const tr = await openTransformer(ck, runtime);
  const sessionS = (performance.now() - t1) / 1000;
  const cfg = ck.transformerConfig;
  const side = SIZE / 16;
  const N = side * side;
  const L = 256;
  const x = {
    hidden_states: gaussian(1, [1, N, cfg.inChannels]),
    encoder_hidden_states: gaussian(2, [1, L, cfg.jointAttentionDim]),
    pooled_projections: gaussian(3, [1, cfg.pooledProjectionDim]),
    timestep: Float32Array.of(0.75),
    guidance: cfg.guidanceEmbeds ? Float32Array.of(3.5) : undefined,
    img_ids: latentImageIds(side, side),
    txt_ids: textIds(L),
  };
  let sample: Float32Array = new Float32Array(0);
  await tr.run(x);
  const times: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t = performance.now();
    sample = (await tr.run(x)).sample!.data as Float32Array;
    times.push((performance.now() - t) / 1000);
  }
  const velocity = path.join(work, `${form}-${run}.f32`);
  writeFileSync(velocity, sample);
  gpu.stop();
  const computeBytes = runtime.executionProvider === 'cpu' ? 4 : 2;
  const result: ChildResult = {
    form,
    run,
    prepareS,
    sessionS,
    stepS: median(times),
    peakMiB: peakRssMiB(),
    gpuPeakMiB: gpu.peak(),
    velocity,
    resident: w.summary.residentBytes(computeBytes),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await tr.release();
}

/** The wide checkpoint in `form` (written once under .tmp/bench-weights/). */
function formDir(bf16Dir: string, form: Form): string {
  if (form === 'bf16' || form === 'int8' || form === 'int4') return bf16Dir;
  const dir = path.join(work, `wide-${form}`);
  if (!existsSync(path.join(dir, 'model_index.json'))) {
    process.stderr.write(`writing the wide checkpoint in ${form} to ${dir} (once)...\n`);
    rmSync(dir, { recursive: true, force: true });
    cpSync(bf16Dir, dir, { recursive: true });
    writeWeightsForm(dir, form as TinyForm, (m) => process.stderr.write(`  ${m}\n`));
  }
  return dir;
}

if (process.argv[2] === '--child') {
  const [, , , form, run, dir, weights, cacheDir] = process.argv;
  await child(form as Form, run!, dir!, weights as WeightForm, cacheDir!);
  process.exit(0);
}

const forms = (process.argv.length > 2 ? process.argv.slice(2) : ALL) as Form[];
for (const f of forms)
  if (!(ALL as readonly string[]).includes(f)) throw new Error(`unknown form ${f} (use ${ALL.join(', ')})`);
mkdirSync(work, { recursive: true });
const bf16Dir = await wideCheckpoint();
const results: ChildResult[] = [];
for (const form of ['fp32', 'bf16', ...forms.filter((f) => f !== 'fp32' && f !== 'bf16')] as Form[]) {
  const dir = formDir(bf16Dir, form);
  const weights: WeightForm = form === 'int8' || form === 'int4' ? form : 'auto';
  const cacheDir = path.join(work, `cache-${form}`);
  rmSync(cacheDir, { recursive: true, force: true });
  // Forms that prepare anything run twice: cold (the cache is written) and warm (it is found again).
  // Every quantized form also runs its parity reference (jsref) unless JSREF=0.
  const runs =
    form === 'fp32' || form === 'bf16'
      ? ['load']
      : [...(form === 'fp8' ? ['load'] : ['cold', 'warm']), ...(process.env.JSREF === '0' ? [] : ['jsref'])];
  for (const run of runs) {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', path.join(repoRoot, 'bench', 'weights.ts'), '--child', form, run, dir, weights, cacheDir],
      {
        env: { ...process.env, LOG_LEVEL: 'warn' },
        encoding: 'utf8',
        maxBuffer: 64 * 2 ** 20,
      },
    );
    if (r.status !== 0) {
      process.stderr.write(
        `${form} (${run}) failed (exit ${r.status}):\n${r.stderr.split('\n').slice(-15).join('\n')}\n`,
      );
      continue;
    }
    const line = r.stdout.trim().split('\n').at(-1)!;
    const res = JSON.parse(line) as ChildResult;
    results.push(res);
    process.stderr.write(
      `  ${form} ${run}: prepare ${fmt(res.prepareS, 1)} s, session ${fmt(res.sessionS, 1)} s, step ${fmt(res.stepS)} s, peak RSS ${fmt(res.peakMiB / 1024)} GiB\n`,
    );
  }
}

const read = (f: string) => new Float32Array(readFileSync(f).buffer.slice(0));
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const fp32 = results.find((r) => r.form === 'fp32');
const bf16 = results.find((r) => r.form === 'bf16');
if (!fp32 || !bf16) throw new Error('the fp32 and bf16 runs are the references; both must succeed');
const ref = read(fp32.velocity);
const peakRef = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const runtime = runtimeFromEnv();
console.log(
  `\nweights forms on the wide preset (${SIZE}², ${runtime.executionProvider}, ${runtime.threads || 'all'} threads; step = one transformer forward, median of ${REPS}); |velocity| ≤ ${fmt(peakRef)}`,
);
console.log(
  'form       run    prepare s  session s  step s  step÷bf16  peak RSS GiB  RSS÷bf16  GPU peak MiB  weights GiB  max|Δv| vs fp32  mean|Δv|',
);
for (const r of results.filter((x) => x.run !== 'jsref')) {
  const v = read(r.velocity);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < v.length; i++) {
    const d = Math.abs(v[i]! - ref[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  console.log(
    `${r.form.padEnd(10)} ${r.run.padEnd(6)} ${fmt(r.prepareS, 1).padStart(9)}  ${fmt(r.sessionS, 1).padStart(9)}  ${fmt(r.stepS).padStart(6)}  ${fmt(r.stepS / bf16.stepS).padStart(9)}  ` +
      `${fmt(r.peakMiB / 1024).padStart(12)}  ${fmt(r.peakMiB / bf16.peakMiB).padStart(8)}  ${String(r.gpuPeakMiB ?? '-').padStart(12)}  ${fmt(r.resident / 2 ** 30).padStart(11)}  ${max.toExponential(2).padStart(15)}  ${(sum / v.length).toExponential(2)}`,
  );
}

console.log(
  "\nparity: each form's graph vs the fp32 graph over the same stored bytes decoded in JS (bound: float32 kernel noise)",
);
for (const ref of results.filter((r) => r.run === 'jsref')) {
  const own = results.find((r) => r.form === ref.form && (r.run === 'warm' || r.run === 'load'));
  if (own)
    console.log(`${ref.form.padEnd(10)} max|Δv| ${maxDiff(read(own.velocity), read(ref.velocity)).toExponential(2)}`);
}
