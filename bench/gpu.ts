/**
 * The GPU kit's stages (issue 17), in order of value. Each prints its figures as soon as they are measured and
 * rewrites $OUT/results.json ({"stages": [...]}) when it ends; a stage that fails is recorded with its error and the
 * next one runs.
 *   1. the provider loads; each graph's session (CLIP + T5, the step graph, the VAE) is created, with its load time;
 *   2. FLUX.1-schnell geometry (256 text tokens) at 1024², 4 steps, plain: s/step and wall time;
 *   3. RAG steps at 1024²: K2 S2, K4 S4, repaint, the pre-pass, each ÷ plain;
 *   4. FLUX.1-dev 1024², 20 steps, RAG K4 S4, whole call, with the weights as stored (bf16), then
 *      WEIGHTS=transformer:int4,t5:int8 and WEIGHTS=int8 (step ÷ bf16, peak GPU memory);
 *   5. the realscale workload (bench/realscale.ts): a new layout ÷ the same layout warm;
 *   6. WebGPU (fp16) steps, when a Vulkan adapter is there;
 *   7. styles (LoRA): a plain and a K2 S2 step with one global rank-16 style on every linear ÷ without, and the
 *      step without styles ÷ the same step on a graph built without LoRA inputs (what the inputs cost a job).
 * Peak GPU memory comes from nvidia-smi sampled every 100 ms (absent without nvidia-smi).
 *
 * On CUDA/WebGPU the checkpoint is FLUX.1-dev at its real size (19 + 38 blocks, T5-XXL; the `flux` preset), written
 * with random weights on the machine itself (≈ 33 GB). KIT_PROVIDER=cpu runs every stage at tiny size (the `tiny`
 * preset, 256²): the dry run that proves the kit's plumbing.
 *
 *   KIT_PROVIDER=cuda|webgpu|cpu OUT=<dir> [KIT_STAGES="1 2"] node --import tsx bench/gpu.ts
 * (run.sh sets these; here: KIT_PROVIDER=cpu OUT=.tmp/gpu-out node --import tsx bench/gpu.ts)
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { Engine } from '../src/engine/pipeline/engine.ts';
import { generateJob } from '../src/engine/pipeline/jobs.ts';
import { cudaProviderStatus, describeCudaStatus } from '../src/engine/runtime/cuda-provider.ts';
import type { ExecutionProvider, RuntimeOptions } from '../src/engine/runtime/session.ts';
import { PLAIN_SIGNATURE, type StepSignature } from '../src/engine/step/signature.ts';
import { writeTinyModel } from '../src/engine/tiny-model/make.ts';
import type { Preset, Variant } from '../src/engine/tiny-model/presets.ts';
import { parseWeightForms } from '../src/engine/weights/forms.ts';
import type { Scene } from '../src/scene/schema.ts';
import { sceneToRagParams } from '../src/paint/scene-to-rag.ts';
import { benchFeeds, benchSteps } from './rag-workload.ts';
import { peakRssMiB, repoRoot } from './support.ts';
import { randomLoraFile } from '../src/engine/tiny-model/lora.ts';
import { StepRunner, type StepFeeds } from '../src/engine/step/step-runner.ts';
import { graphFormFor } from '../src/engine/runtime/session.ts';
import { layerFactors } from '../src/engine/lora/feeds.ts';

const provider = (process.env.KIT_PROVIDER ?? process.argv[2] ?? 'cpu') as ExecutionProvider;
const outDir = path.resolve(process.env.OUT ?? path.join(repoRoot, '.tmp', 'gpu-out'));
const only = (process.env.KIT_STAGES ?? '')
  .split(/[\s,]+/)
  .filter(Boolean)
  .map(Number);
const onCpu = provider === 'cpu';
/** Real size on a GPU; tiny on the CPU (the dry run). */
const SIZE = onCpu ? 256 : 1024;
const PRESET: Preset = onCpu ? 'tiny' : 'flux';
const modelsDir = process.env.KIT_MODELS ?? path.join(repoRoot, '.tmp', 'gpu-models');
const runtime: RuntimeOptions = { executionProvider: provider, threads: 0 };
const t00 = performance.now();

const say = (s: string) => process.stdout.write(`${s}\n`);
const secs = (ms: number) => +(ms / 1000).toFixed(3);
const since = () => `${((performance.now() - t00) / 1000).toFixed(0)} s`;

interface StageRecord {
  stage: number;
  name: string;
  provider: ExecutionProvider;
  ok: boolean;
  seconds: number;
  figures: Record<string, unknown>[];
  error?: string;
}
const stages: StageRecord[] = [];
fs.mkdirSync(outDir, { recursive: true });
const writeResults = () =>
  fs.writeFileSync(
    path.join(outDir, 'results.json'),
    `${JSON.stringify({ provider, preset: PRESET, size: SIZE, stages }, null, 2)}\n`,
  );

/** Peak GPU memory (MiB) while `fn` runs, from nvidia-smi every 100 ms; undefined without nvidia-smi. */
async function withGpuPeak<T>(fn: () => Promise<T>): Promise<{ value: T; peakGpuMiB?: number }> {
  if (onCpu) return { value: await fn() };
  let peak: number | undefined;
  const sample = () =>
    execFile('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits'], (err, out) => {
      if (!err) peak = Math.max(peak ?? 0, Number.parseFloat(out));
    });
  sample();
  const timer = setInterval(sample, 100);
  try {
    return { value: await fn(), peakGpuMiB: peak };
  } finally {
    clearInterval(timer);
  }
}

async function stage(n: number, name: string, body: (figure: (f: Record<string, unknown>) => void) => Promise<void>) {
  if (only.length && !only.includes(n)) return;
  const rec: StageRecord = { stage: n, name, provider, ok: false, seconds: 0, figures: [] };
  stages.push(rec);
  say(`=== stage ${n}: ${name} (${provider}, started at ${since()}) ===`);
  const t0 = performance.now();
  try {
    await body((f) => {
      rec.figures.push(f);
      say(
        `  ${Object.entries(f)
          .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
          .join(', ')}`,
      );
    });
    rec.ok = true;
  } catch (e) {
    rec.error = String((e as Error).stack ?? e)
      .split('\n')
      .slice(0, 12)
      .join('\n');
    say(`  stage ${n} FAILED: ${rec.error.split('\n').slice(0, 4).join(' | ')}`);
  }
  rec.seconds = secs(performance.now() - t0);
  writeResults();
}

/** The random checkpoint of `variant`, written once under modelsDir. */
async function checkpoint(variant: Variant): Promise<string> {
  const dir = path.join(modelsDir, `${PRESET}-${variant}`);
  if (fs.existsSync(path.join(dir, 'model_index.json'))) return dir;
  const t0 = performance.now();
  say(`  writing the ${PRESET} ${variant} checkpoint (random weights) to ${dir}…`);
  await writeTinyModel({ out: dir, preset: PRESET, variant, seed: 7, force: true, workers: onCpu ? 1 : 16 });
  say(`  written in ${secs(performance.now() - t0)} s`);
  return dir;
}

/** n regions side by side: n hard-binding boxes and n soft-refinement cells. */
function scene(n: number): Scene {
  const things = ['a tabby cat', 'a red ball', 'a potted fern', 'a brass lamp', 'a stack of books'];
  return {
    width: SIZE,
    height: SIZE,
    prompt: n ? `a cosy room with ${things.slice(0, n).join(', ')}` : 'a cosy room',
    background: 'a cosy room',
    exclude: [],
    regions: Array.from({ length: n }, (_, k) => ({
      id: `r${k}`,
      label: things[k]!,
      prompt: `${things[k]}, detailed`,
      box: { x: k / n, y: 0.25, w: 1 / n, h: 0.5 },
    })),
  };
}

const sig = (s: Partial<StepSignature>): StepSignature => ({ ...PLAIN_SIGNATURE, ...s });

// The dev checkpoint serves every stage: schnell's step differs only by the guidance embedder (one small MLP) and
// its 256 text tokens, which the step stages use; two real-size checkpoints would not fit the GPU machine's disk.
let modelDir = '';
let plainStepMs = 0;

await stage(1, 'provider loads; sessions created', async (figure) => {
  if (provider === 'cuda') {
    const s = cudaProviderStatus();
    figure({ onnxruntimeNode: s.ortNodeVersion, cudaProvider: s.found, expected: s.expected });
    if (s.found !== s.expected || s.ortNodeVersion !== s.expected) throw new Error(describeCudaStatus(s));
  }
  modelDir = await checkpoint('dev');
  const engine = Engine.open({ modelDir, runtime, memoryCheck: false });
  try {
    const { value: steps, peakGpuMiB } = await withGpuPeak(() => engine.warmUp());
    for (const s of steps)
      figure({ session: s.component, loadS: secs(s.ms), rssMiB: Math.round(s.rssBytes / 2 ** 20) });
    figure({ peakGpuMiB, peakRssMiB: Math.round(peakRssMiB()) });
  } finally {
    await engine.close();
  }
});

/** The dev checkpoint, written first when stage 1 did not run (KIT_STAGES without 1). */
const ck = async () => loadCheckpoint((modelDir ||= await checkpoint('dev')));

await stage(2, `plain steps at ${SIZE}², 4 steps (schnell geometry)`, async (figure) => {
  const model = await ck();
  const { value: m, peakGpuMiB } = await withGpuPeak(() =>
    benchSteps(model, [PLAIN_SIGNATURE], { runtime, width: SIZE, height: SIZE, textLength: 256, runs: 4, warmup: 1 }),
  );
  plainStepMs = m[0]!.minMs;
  figure({ sPerStep: secs(m[0]!.minMs), medianS: secs(m[0]!.medianMs), sessionS: secs(m[0]!.createMs), peakGpuMiB });
  figure({ fourStepsS: secs(4 * m[0]!.medianMs), note: 'transformer steps only (4 × median)' });
});

await stage(3, `RAG steps at ${SIZE}², each ÷ plain`, async (figure) => {
  const cases: [string, StepSignature][] = [
    ['plain', PLAIN_SIGNATURE],
    ['K2 S2', sig({ boxes: 2, cells: 2 })],
    ['K4 S4', sig({ boxes: 4, cells: 4 })],
    ['repaint', sig({ cells: 2, repaint: true })],
    ['pre-pass', sig({ boxes: 2, cells: 2, prepass: true })],
  ];
  const model = await ck();
  const { value: m, peakGpuMiB } = await withGpuPeak(() =>
    benchSteps(
      model,
      cases.map(([, s]) => s),
      { runtime, width: SIZE, height: SIZE, textLength: 256, runs: 3, warmup: 1 },
    ),
  );
  const plain = m[0]!.minMs;
  m.forEach((r, i) =>
    figure({
      case: cases[i]![0],
      sPerStep: secs(r.minMs),
      perPlain: +(r.minMs / plain).toFixed(2),
      flopsPerPlain: +(r.flops.total / m[0]!.flops.total).toFixed(2),
    }),
  );
  figure({ peakGpuMiB });
});

await stage(4, `FLUX.1-dev ${SIZE}², 20 steps, RAG K4 S4, whole call, per weight form`, async (figure) => {
  let bf16StepS = 0;
  for (const weights of ['', 'transformer:int4,t5:int8', 'int8']) {
    const engine = Engine.open({
      modelDir: modelDir || (await checkpoint('dev')),
      runtime,
      memoryCheck: false,
      weights: parseWeightForms(weights || undefined),
      weightsCacheDir: path.join(modelsDir, 'prepared'),
    });
    try {
      const { value, peakGpuMiB } = await withGpuPeak(async () => {
        const t0 = performance.now();
        await engine.warmUp();
        const loadS = secs(performance.now() - t0);
        const params = { ...sceneToRagParams(scene(4), { model: engine.modelId, seed: 11, steps: 20 }) };
        const t1 = performance.now();
        await generateJob(engine, { ...params, num_inference_steps: 20 });
        return { loadS, callS: secs(performance.now() - t1) };
      });
      const stepS = value.callS / 20;
      if (!weights) bf16StepS = stepS;
      figure({
        weights: weights || 'as stored (bf16)',
        loadS: value.loadS,
        callS: value.callS,
        perStepS: +stepS.toFixed(3),
        stepPerBf16: bf16StepS ? +(stepS / bf16StepS).toFixed(2) : undefined,
        peakGpuMiB,
        peakRssMiB: Math.round(peakRssMiB()),
      });
    } finally {
      await engine.close();
    }
  }
});

await stage(5, 'realscale workload: a new layout ÷ the same layout warm', async (figure) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'bench', 'realscale.ts'), modelDir], {
    env: {
      ...process.env,
      EXECUTION_PROVIDER: provider,
      ORT_THREADS: '0',
      SIZE: onCpu ? '128' : '512',
      STEPS: onCpu ? '2' : '4',
    },
    encoding: 'utf8',
    timeout: onCpu ? 120_000 : 150_000,
  });
  for (const m of r.stdout.matchAll(/^\s*(\d) regions: ([\d.]+)×/gm)) figure({ regions: +m[1]!, newPerWarm: +m[2]! });
  const peak = /^peak RSS ([\d.]+) GiB/m.exec(r.stdout);
  if (peak) figure({ peakRssGiB: +peak[1]! });
  if (r.status !== 0)
    throw new Error(`bench/realscale.ts exited ${r.status ?? r.signal}: ${r.stderr.split('\n').slice(-6).join(' | ')}`);
});

await stage(6, 'WebGPU (fp16) steps', async (figure) => {
  if (onCpu) {
    figure({ skipped: 'the CPU dry run has no WebGPU adapter (Dawn rejects lavapipe)' });
    return;
  }
  const web: RuntimeOptions = { executionProvider: 'webgpu', threads: 0 };
  const model = await ck();
  const { value: m, peakGpuMiB } = await withGpuPeak(() =>
    benchSteps(model, [PLAIN_SIGNATURE, sig({ boxes: 2, cells: 2 })], {
      runtime: web,
      width: SIZE,
      height: SIZE,
      textLength: 256,
      runs: 3,
      warmup: 1,
    }),
  );
  figure({ plainSPerStep: secs(m[0]!.minMs), k2s2PerPlain: +(m[1]!.minMs / m[0]!.minMs).toFixed(2), peakGpuMiB });
  if (plainStepMs) figure({ webgpuPerCuda: +(m[0]!.minMs / plainStepMs).toFixed(2) });
});

await stage(7, `styles (LoRA) at ${SIZE}²: with ÷ without, and the LoRA inputs' cost`, async (figure) => {
  const model = await ck();
  const form = graphFormFor(provider);
  const styledRunner = StepRunner.forCheckpoint(model, runtime, form);
  const bare = StepRunner.forCheckpoint(model, runtime, { ...form, lora: false });
  try {
    const geometry = { runtime, width: SIZE, height: SIZE, textLength: 256 };
    const plain = benchFeeds(model, PLAIN_SIGNATURE, geometry).feeds;
    const rag = benchFeeds(model, sig({ boxes: 2, cells: 2 }), geometry).feeds;
    const file = randomLoraFile(styledRunner.loraLayers, { rank: 16, seed: 1, path: 'gpu-kit-r16', upScale: 0.1 });
    const styled = (f: StepFeeds): StepFeeds => ({
      ...f,
      lora: {
        layers: layerFactors([{ file, scale: 0.8, name: file.path }]),
        count: 1,
        main: { img: new Float32Array(f.imgIds.length / 3).fill(1), txt: Float32Array.of(1) },
        regional: (f.boxes ?? []).map(() => Float32Array.of(1)),
      },
    });
    const cases: [string, StepRunner, StepFeeds][] = [
      ['plain', styledRunner, plain],
      ['plain, global r16', styledRunner, styled(plain)],
      ['plain, graph without LoRA inputs', bare, plain],
      ['K2 S2', styledRunner, rag],
      ['K2 S2, global r16', styledRunner, styled(rag)],
      ['K2 S2, graph without LoRA inputs', bare, rag],
    ];
    const { value: ms, peakGpuMiB } = await withGpuPeak(async () => {
      for (const [, r, f] of cases) await r.run(f);
      const best = cases.map(() => Infinity);
      for (let round = 0; round < 3; round++)
        for (const [i, [, r, f]] of cases.entries()) {
          const t0 = performance.now();
          await r.run(f);
          best[i] = Math.min(best[i]!, performance.now() - t0);
        }
      return best;
    });
    const per = (i: number, of: number) => +(ms[i]! / ms[of]!).toFixed(3);
    figure({ plainS: secs(ms[0]!), styledPerPlain: per(1, 0), plainPerBareGraph: per(0, 2) });
    figure({ k2s2S: secs(ms[3]!), styledPerK2s2: per(4, 3), k2s2PerBareGraph: per(3, 5) });
    figure({ peakGpuMiB, peakRssMiB: Math.round(peakRssMiB()) });
  } finally {
    await styledRunner.release();
    await bare.release();
  }
});

writeResults();
say(
  `=== done in ${since()}: ${stages.filter((s) => s.ok).length} of ${stages.length} stages ok; ${path.join(outDir, 'results.json')} ===`,
);
process.exit(stages.every((s) => s.ok) ? 0 : 1);
