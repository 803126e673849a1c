/**
 * LoRA on the one resident model (issue 18), on the `wide` preset (FLUX.1's real width, 1 double + 2 single
 * blocks; written once under .tmp/), one run, ratios measured in this process:
 *   - step ÷ no LoRA: one global LoRA of rank 16, then of rank 64, over every linear (plain layout); three region
 *     LoRAs of rank 32, one per box, at K3 S3 (goals ≤ 1.10 and ≤ 1.25);
 *   - the no-LoRA step of the LoRA graph ÷ the step graph built without LoRA inputs (the cost of having them),
 *     plain and at K3 S3 (where every box's stream and every SR stream passes the gates);
 *   - peak RSS after the LoRA jobs ÷ after the same jobs without LoRA;
 *   - switching LoRAs between two jobs: loading (cache hit) and building the job's feeds, plus the first step's
 *     excess over a warm step (goal ≤ 1 s);
 *   - ONNX Runtime sessions created by jobs after warm-up (goal 0);
 *   - the per-linear If gate alone, at FLUX's width (what a job without LoRA pays for the LoRA inputs).
 * The LoRA factors are random (seeded), served by an in-memory loader: what is measured is the engine, not a
 * file reader.
 *
 *   node --import tsx bench/lora.ts [model dir]     (SIZE, STEPS, REPS, ORT_THREADS from the environment)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Engine } from '../src/engine/pipeline/engine.ts';
import { runPlan } from '../src/engine/pipeline/run.ts';
import type { RunPlan } from '../src/engine/pipeline/run-plan.ts';
import { prepareLora } from '../src/engine/pipeline/run-lora.ts';
import { latentGeometry } from '../src/engine/latents.ts';
import { StepRunner } from '../src/engine/step/step-runner.ts';
import { createSession, graphFormFor, ort } from '../src/engine/runtime/session.ts';
import { Graph } from '../src/engine/onnx/graph.ts';
import { linear } from '../src/engine/onnx/nn.ts';
import { add, greater, shapeOf } from '../src/engine/onnx/ops.ts';
import { ifElse } from '../src/engine/onnx/control.ts';
import type { LoraFile } from '../src/engine/lora/types.ts';
import type { LoraRef, RagParams } from '../src/rag/params.ts';
import { fmt, median, peakRssMiB, repoRoot, runtimeFromEnv, timeMs, wideCheckpoint } from './support.ts';
import { randomLoraFile } from '../src/engine/tiny-model/lora.ts';

const SIZE = Number(process.env.SIZE ?? 256);
const STEPS = Number(process.env.STEPS ?? 2);
const REPS = Number(process.env.REPS ?? 3);

const created: number[] = [];
const create = ort.InferenceSession.create.bind(ort.InferenceSession);
(ort.InferenceSession as { create: typeof create }).create = (async (...args: Parameters<typeof create>) => {
  const s = await create(...args);
  created.push(performance.now());
  return s;
}) as typeof create;

const modelDir = process.argv[2] ?? (await wideCheckpoint());
const runtime = runtimeFromEnv();

const dir = path.join(repoRoot, '.tmp', 'bench-lora');
mkdirSync(dir, { recursive: true });
const files = new Map<string, LoraFile>();
const engine = Engine.open({
  modelDir,
  runtime,
  loraLoader: (p) => Promise.resolve(files.get(p)!),
});
const layers = engine.steps.loraLayers;
const style = (name: string, rank: number, seed: number): LoraRef => {
  const p = path.join(dir, `${name}.safetensors`);
  writeFileSync(p, name);
  files.set(p, randomLoraFile(layers, { rank, seed, path: p, upScale: 0.1 }));
  return { name: p, scale: 0.8 };
};
const r16 = style('global-r16', 16, 1);
const r64 = style('global-r64', 64, 2);
const regionStyles = [style('region-a-r32', 32, 3), style('region-b-r32', 32, 4), style('region-c-r32', 32, 5)];
const switchStyles = [style('switch-a-r32', 32, 6), style('switch-b-r32', 32, 7)];

const t0 = performance.now();
await engine.warmUp();
process.stderr.write(`warm-up ${fmt((performance.now() - t0) / 1000, 1)} s\n`);
const warmSessions = created.length;

const plainParams = (loras?: LoraRef[]): RagParams => ({
  prompt: 'a cosy room with a cat',
  HB_prompt_list: [],
  HB_m_offset_list: [],
  HB_n_offset_list: [],
  HB_m_scale_list: [],
  HB_n_scale_list: [],
  HB_replace: -1,
  SR_prompt: 'a cosy room BREAK a cat',
  SR_hw_split_ratio: '0.5,0.5',
  SR_delta: 0,
  seed: 11,
  width: SIZE,
  height: SIZE,
  num_inference_steps: STEPS,
  ...(loras ? { loras } : {}),
});
const k3s3 = (loras?: LoraRef[]): RagParams => ({
  ...plainParams(),
  prompt: 'a cosy room with a cat, a lamp and a fern',
  HB_prompt_list: ['a tabby cat', 'a brass lamp', 'a potted fern'],
  HB_m_offset_list: [0, 1 / 3, 2 / 3],
  HB_n_offset_list: [0.25, 0.25, 0.25],
  HB_m_scale_list: [1 / 3, 1 / 3, 1 / 3],
  HB_n_scale_list: [0.5, 0.5, 0.5],
  HB_replace: STEPS,
  SR_prompt: 'a tabby cat BREAK a brass lamp BREAK a potted fern',
  SR_hw_split_ratio: '0.34,0.33,0.33',
  SR_delta: 0.5,
  ...(loras ? { HB_lora_list: loras.map((l) => [l]) } : {}),
});

/** Step times of one job of a plan (on `runner`, or the engine's). */
async function steps(params: RagParams, runner?: StepRunner): Promise<number[]> {
  const plan = await engine.plan(params);
  const res = runner
    ? await runPlan(plan, {
        steps: runner,
        conditioning: engine.conditioning(plan.textLength),
        scheduler: engine.scheduler,
      })
    : await engine.run(plan);
  return res.stepMs;
}

interface Ratio {
  min: number;
  rounds: number[];
  a: number;
  b: number;
}

/**
 * B ÷ A over REPS rounds, each one job of A then one of B, so that other load on the (shared) machine hits both
 * alike: the ratio of the fastest steps (load only ever adds time) and each round's ratio of median steps.
 */
async function ratio(a: () => Promise<number[]>, b: () => Promise<number[]>): Promise<Ratio> {
  const as: number[] = [];
  const bs: number[] = [];
  const rounds: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const x = await a();
    const y = await b();
    as.push(...x);
    bs.push(...y);
    rounds.push(median(y) / median(x));
  }
  const a0 = Math.min(...as);
  const b0 = Math.min(...bs);
  return { min: b0 / a0, rounds, a: a0, b: b0 };
}

const rows: [string, string][] = [];
const note = (k: string, v: string) => {
  rows.push([k, v]);
  process.stderr.write(`  ${k}: ${v}\n`);
};
const show = (r: Ratio, goal: string) =>
  `${fmt(r.min)}× fastest steps (${fmt(r.b, 0)} vs ${fmt(r.a, 0)} ms); rounds ${r.rounds.map((x) => fmt(x)).join(', ')}${goal}`;

await steps(plainParams());
await steps(k3s3());
const peakNone = peakRssMiB();
const plain = () => steps(plainParams());
note('global rank 16 ÷ none', show(await ratio(plain, () => steps(plainParams([r16]))), '; goal ≤ 1.10'));
note('global rank 64 ÷ none', show(await ratio(plain, () => steps(plainParams([r64]))), '; goal ≤ 1.25'));
note(
  'K3 S3: 3 region LoRAs rank 32 ÷ none',
  show(
    await ratio(
      () => steps(k3s3()),
      () => steps(k3s3(regionStyles)),
    ),
    '',
  ),
);
const peakLora = peakRssMiB();
const noneMs = Math.min(...(await plain()));

// Switching styles between two jobs: the feeds of a new set (files cached after their first job), and the first
// step's excess over a warm step.
const geo = latentGeometry(SIZE, SIZE, 16);
const grid = { rows: geo.rows, cols: geo.cols };
const switchPlan = async (ref: LoraRef): Promise<RunPlan> => engine.plan(plainParams([ref]));
for (const s of switchStyles) await engine.run(await switchPlan(s)); // both files read once
const prepMs: number[] = [];
const firstExcess: number[] = [];
for (let i = 0; i < 4; i++) {
  const plan = await switchPlan(switchStyles[i % 2]!);
  const t = performance.now();
  await prepareLora(plan, engine.loras, engine.steps, grid);
  prepMs.push(performance.now() - t);
  const res = await engine.run(plan);
  firstExcess.push(res.stepMs[0]! - median(res.stepMs.slice(1).length ? res.stepMs.slice(1) : [noneMs]));
}
note(
  'switch: load (cached) + build feeds (ms)',
  `${prepMs.map((x) => fmt(x, 0)).join(', ')}; first step excess ${firstExcess.map((x) => fmt(x, 0)).join(', ')} ms (goal ≤ 1000 together)`,
);
note(
  'peak RSS: after LoRA jobs ÷ after no-LoRA jobs',
  `${fmt(peakLora / peakNone)}× (${fmt(peakLora, 0)} / ${fmt(peakNone, 0)} MiB)`,
);
note('sessions created by jobs after warm-up', String(created.length - warmSessions));

// The cost of having LoRA inputs at all: the same plain job on a step graph built without them.
const computeType = graphFormFor(runtime.executionProvider).computeType;
const bare = StepRunner.forCheckpoint(engine.checkpoint, runtime, {
  ...graphFormFor(runtime.executionProvider),
  computeType,
  lora: false,
});
await bare.prepare();
const bareRatio = await ratio(
  () => steps(plainParams(), bare),
  () => steps(plainParams()),
);
note(
  'no-LoRA step: LoRA graph ÷ graph without LoRA inputs',
  `${show(bareRatio, '')}; nodes ${engine.steps.sessions[0]?.nodes} vs ${bare.sessions[0]?.nodes}, session created in ${fmt((engine.steps.sessions[0]?.createMs ?? 0) / 1000, 1)} vs ${fmt((bare.sessions[0]?.createMs ?? 0) / 1000, 1)} s`,
);
// A RAG job runs the gates in every stream (SR text streams, each box's Loop iteration): the same ratio at K3 S3.
const bareRagRatio = await ratio(
  () => steps(k3s3(), bare),
  () => steps(k3s3()),
);
note('no-LoRA K3 S3 step: LoRA graph ÷ graph without LoRA inputs', show(bareRagRatio, ''));
await bare.release();
await engine.close();

/**
 * The If (Rℓ > 0) gate alone, at FLUX's width: 24 chained linears [512, 3072]·[3072, 3072]ᵀ, plain and each in the
 * gate with zero ranks (its else branch hands the plain output through), one thread, runs alternated.
 */
async function gateCost(): Promise<{ plain: number; gated: number }> {
  const D = 3072;
  const T = 512;
  const w = new Float32Array(D * D).map((_, i) => Math.sin(i) * 0.01);
  const build = (gated: boolean) => {
    const g = new Graph('gate-cost');
    let x = g.input('x', 'float32', [T, D]);
    const down = g.input('down', 'float32', ['r', D]);
    const up = g.input('up', 'float32', [D, 'r']);
    const on = greater(shapeOf(down, 0, 1), g.ints([0]));
    for (let i = 0; i < 24; i++) {
      const y = linear(x, g.weight(`w${i}`, { dtype: 'float32', shape: [D, D], data: new Uint8Array(w.buffer) }));
      const input = x;
      x = gated
        ? ifElse(
            on,
            () => [add(y, linear(linear(input, down), up))],
            () => [y],
          )[0]!
        : y;
    }
    g.output(x, 'y');
    return g;
  };
  const feeds = {
    x: new ort.Tensor('float32', new Float32Array(T * D).fill(0.1), [T, D]),
    down: new ort.Tensor('float32', new Float32Array(0), [0, D]),
    up: new ort.Tensor('float32', new Float32Array(0), [D, 0]),
  };
  const one = { executionProvider: 'cpu' as const, threads: 1 };
  const [a, b] = [(await createSession(build(false), one)).session, (await createSession(build(true), one)).session];
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < 8; i++) {
    ta.push(await timeMs(() => a.run(feeds), 1, i === 0 ? 1 : 0));
    tb.push(await timeMs(() => b.run(feeds), 1, i === 0 ? 1 : 0));
  }
  await a.release();
  await b.release();
  return { plain: median(ta), gated: median(tb) };
}
const gate = await gateCost();
note(
  'If gate alone, 24 linears at width 3072, Rl = 0',
  `${fmt(gate.gated / gate.plain, 3)}× (${fmt(gate.gated, 0)} vs ${fmt(gate.plain, 0)} ms, median of 8, 1 thread)`,
);

console.log(
  `\nwide preset ${SIZE}², ${STEPS} steps, ${REPS} rounds of (none, LoRA) jobs per ratio, ${runtime.executionProvider}`,
);
for (const [k, v] of rows) console.log(`${k.padEnd(50)} ${v}`);
console.log(`peak RSS of the whole run ${fmt(peakRssMiB(), 0)} MiB (both step graphs and the gate test included)`);
