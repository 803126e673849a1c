/**
 * One resident model at FLUX.1's real width (issue 11). On the `wide` preset (3072 = 24 × 128, 1 double + 2 single
 * blocks, written once under .tmp/) one long-lived engine paints what a Discord server sends: layouts with 3, 2,
 * 5 and 1 regions, each twice, then a repaint and a repaint of that repaint, at 256², 2 steps. Per job it prints
 * the wall time, the ONNX Runtime sessions created during the job and the seconds spent creating them, and the
 * peak RSS; then the ratios, measured in this one run:
 *   - a new layout ÷ the same layout sent again (goal ≤ 1.1: no job builds or loads anything);
 *   - peak RSS ÷ one copy of the transformer weights in the compute precision (goal ≤ 1.4).
 *
 *   node --import tsx bench/realscale.ts [model dir]     (EXECUTION_PROVIDER / ORT_THREADS / WEIGHTS from the environment)
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/pipeline/engine.ts';
import { parseWeightForms } from '../src/engine/weights/forms.ts';
import { generateJob, repaintJob, type JobOutput } from '../src/engine/pipeline/jobs.ts';
import { loadGeneration, saveGeneration } from '../src/cli/generation-files.ts';
import { graphFormFor, ort } from '../src/engine/runtime/session.ts';
import { DTYPE_BYTES } from '../src/engine/onnx/graph.ts';
import { rectsToMaskPng } from '../src/rag/mask.ts';
import { sceneToRagParams } from '../src/paint/scene-to-rag.ts';
import type { RagParams } from '../src/rag/params.ts';
import type { Scene } from '../src/scene/schema.ts';
import { fmt, peakRssMiB, repoRoot, runtimeFromEnv, wideCheckpoint } from './support.ts';

const SIZE = Number(process.env.SIZE ?? 256);
const STEPS = Number(process.env.STEPS ?? 2);

// Every session ONNX Runtime creates in this process, whoever creates it.
const created: { ms: number }[] = [];
const create = ort.InferenceSession.create.bind(ort.InferenceSession);
(ort.InferenceSession as { create: typeof create }).create = (async (...args: Parameters<typeof create>) => {
  const t0 = performance.now();
  const s = await create(...args);
  created.push({ ms: performance.now() - t0 });
  return s;
}) as typeof create;

const modelDir = process.argv[2] ?? (await wideCheckpoint());
const runtime = runtimeFromEnv();
// WEIGHTS=int4 etc. runs the same workload on quantized weights (prepared once into .tmp/realscale-weights).
const engine = Engine.open({
  modelDir,
  runtime,
  weights: parseWeightForms(process.env.WEIGHTS),
  weightsCacheDir: path.join(repoRoot, '.tmp', 'realscale-weights'),
});
const computeType = graphFormFor(runtime.executionProvider).computeType;
const weights = engine.checkpoint.transformerWeights();
const params = weights.names().reduce((n, name) => n + weights.info(name).shape.reduce((a, b) => a * b, 1), 0);
const copyBytes = params * DTYPE_BYTES[computeType];
process.stderr.write(
  `${modelDir}: transformer ${(params / 1e6).toFixed(0)} M parameters = ${(copyBytes / 2 ** 30).toFixed(2)} GiB in ${computeType}\n`,
);

const t0 = performance.now();
const warmSteps = await engine.warmUp((s) =>
  process.stderr.write(`  warm-up: ${s.component} ${fmt(s.ms / 1000, 1)} s, RSS ${fmt(s.rssBytes / 2 ** 30)} GiB\n`),
);
const warmS = (performance.now() - t0) / 1000;
// What the process held before the transformer was loaded (Node, ORT, text encoders): the rest of the peak is the
// transformer's weights and the jobs' activations.
const beforeTransformerBytes = warmSteps.find((s) => s.component === 'text encoders')!.rssBytes;
const warmSessions = created.length;

/** n regions in a row, as a planner would box them. */
function scene(n: number): Scene {
  const things = ['a tabby cat', 'a red ball', 'a potted fern', 'a brass lamp', 'a stack of books'];
  return {
    width: SIZE,
    height: SIZE,
    prompt: `a cosy room with ${things.slice(0, n).join(', ')}`,
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

interface Row {
  job: string;
  ms: number;
  sessions: number;
  createS: number;
  peakMiB: number;
}
const rows: Row[] = [];
async function job(name: string, fn: () => Promise<JobOutput>): Promise<JobOutput> {
  const before = created.length;
  const t = performance.now();
  const out = await fn();
  const fresh = created.slice(before);
  rows.push({
    job: name,
    ms: performance.now() - t,
    sessions: fresh.length,
    createS: fresh.reduce((s, c) => s + c.ms, 0) / 1000,
    peakMiB: peakRssMiB(),
  });
  process.stderr.write(`  ${name}: ${fmt((performance.now() - t) / 1000, 1)} s\n`);
  return out;
}

const base = (n: number): RagParams => ({
  ...sceneToRagParams(scene(n), { model: engine.modelId, seed: 11, steps: STEPS }),
  num_inference_steps: STEPS,
});
let last: JobOutput | undefined;
let lastParams: RagParams | undefined;
for (const n of [3, 2, 5, 1]) {
  for (const pass of ['new', 'again'] as const) {
    lastParams = base(n);
    last = await job(`${n} regions (${pass})`, () => generateJob(engine, lastParams!));
  }
}
/** Saves a result as the CLI does (repaints read their parent's image and trajectory files). */
const files = (name: string, out: JobOutput, rag: RagParams) => {
  const dir = path.join(repoRoot, '.tmp', 'realscale', name);
  saveGeneration(dir, { out, rag, model: engine.modelId, version: engine.version });
  const { image, trajectory } = loadGeneration(dir);
  return { image, trajectory };
};
const repaintOf = async (p: RagParams, what: string, seed: number): Promise<RagParams> => ({
  ...p,
  Repainting_mask: await rectsToMaskPng([{ x: 0, y: SIZE / 4, w: SIZE / 2, h: SIZE / 2 }], SIZE, SIZE),
  Repainting_prompt: `a cosy room with ${what}`,
  // The same SR cells, the changed one now describing the new thing.
  Repainting_SR_prompt: (p.SR_prompt ?? what)
    .split('BREAK')
    .map((seg, j) => (j === 0 ? ` ${what} ` : seg))
    .join('BREAK'),
  Repainting_HB_prompt: what,
  Repainting_HB_replace: 1,
  Repainting_seed: seed,
  Repainting_single: 0,
});
const first = lastParams!;
const r1Params = await repaintOf(first, 'a sleeping dog', 5);
const r1 = await job('repaint', () => repaintJob(engine, r1Params, { params: first, ...files('first', last!, first) }));
const r2Params = await repaintOf(r1Params, 'a grey rabbit', 6);
await job('repaint of the repaint', () =>
  repaintJob(engine, r2Params, { params: r1Params, ...files('repaint', r1, r1Params), kind: 'repaint' }),
);
await engine.close();

const table = [
  ['job', 'wall s', 'sessions created', 'creating s', 'peak RSS MiB'],
  ...rows.map((r) => [r.job, fmt(r.ms / 1000, 2), String(r.sessions), fmt(r.createS, 2), fmt(r.peakMiB, 0)]),
];
const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
console.log(
  `\nwide preset ${SIZE}², ${STEPS} steps, ${runtime.executionProvider}; warm-up ${fmt(warmS, 1)} s, ${warmSessions} sessions (every component)`,
);
for (const r of table) console.log(r.map((x, c) => x.padEnd(widths[c]!)).join('  '));
console.log('\nnew layout ÷ same layout warm:');
for (const n of [3, 2, 5, 1]) {
  const a = rows.find((r) => r.job === `${n} regions (new)`)!;
  const b = rows.find((r) => r.job === `${n} regions (again)`)!;
  console.log(`  ${n} regions: ${fmt(a.ms / b.ms)}× (goal ≤ 1.1)`);
}
const peak = Math.max(...rows.map((r) => r.peakMiB));
console.log(
  `peak RSS ${fmt(peak / 1024)} GiB ÷ one ${computeType} copy of the transformer ${fmt(copyBytes / 2 ** 30)} GiB = ${fmt((peak * 2 ** 20) / copyBytes)}× (goal ≤ 1.4)`,
);
console.log(
  `(peak RSS − ${fmt(beforeTransformerBytes / 2 ** 30)} GiB held before the transformer loaded) ÷ the copy = ${fmt((peak * 2 ** 20 - beforeTransformerBytes) / copyBytes)}×`,
);
console.log(`sessions created by jobs after warm-up: ${rows.reduce((n, r) => n + r.sessions, 0)}`);
