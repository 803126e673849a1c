/**
 * Load time and memory of one FLUX component, alone in this process (the README memory table's measured rows):
 *
 *   node --import tsx scripts/measure-memory.ts --model <checkpoint> --component transformer|t5|clip|vae [--side 1024]
 *
 * Prints the RSS before loading, the peak and settled RSS of the session's creation, and for the transformer
 * one plain step at side × side (the step session the engine uses for every layout): its time and the peak RSS it
 * adds, which is the activation memory of one step at that size. Run one component per process: peak RSS is a
 * per-process high-water mark (getrusage), so components measured in one process would hide each other.
 */
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { ClipTextEncoder } from '../src/engine/graphs/clip-encoder.ts';
import { t5ComputeType } from '../src/engine/graphs/t5.ts';
import { T5TextEncoder } from '../src/engine/graphs/t5-encoder.ts';
import { VaeCodec } from '../src/engine/graphs/vae-codec.ts';
import { gaussian } from '../src/engine/noise.ts';
import { latentGeometry, latentImageIds, textIds } from '../src/engine/latents.ts';
import { modelTimestep, StepRunner } from '../src/engine/step/step-runner.ts';
import { graphFormFor, type ExecutionProvider } from '../src/engine/runtime/session.ts';
import { T5_LENGTH } from '../src/engine/tokenizers/t5.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    component: { type: 'string', default: 'transformer' },
    side: { type: 'string', default: '1024' },
    provider: { type: 'string', default: 'cpu' },
    threads: { type: 'string', default: '0' },
  },
});
if (!values.model) throw new Error('--model <checkpoint folder> is required');
const ep = values.provider as ExecutionProvider;
const runtime = { executionProvider: ep, threads: Number(values.threads) };
const GiB = 2 ** 30;
const rss = () => process.memoryUsage().rss;
const peak = () => process.resourceUsage().maxRSS * 1024;
const gib = (b: number) => `${(b / GiB).toFixed(2)} GiB`;
const say = (m: string) => process.stdout.write(`${m}\n`);

/**
 * The highest RSS seen while the main thread is blocked in run() (ORT's run blocks the event loop, so the
 * sampling happens on a worker thread; RSS is process-wide).
 */
function rssSampler(): { reset(): void; max(): Promise<number>; stop(): Promise<number> } {
  const w = new Worker(
    `const { parentPort } = require('node:worker_threads'); let max = 0;
     const t = setInterval(() => { max = Math.max(max, process.memoryUsage().rss); }, 5);
     parentPort.on('message', (m) => { if (m === 'reset') max = 0; else parentPort.postMessage(max); });`,
    { eval: true },
  );
  const ask = () =>
    new Promise<number>((resolve) => {
      w.once('message', resolve);
      w.postMessage('max');
    });
  return {
    reset: () => w.postMessage('reset'),
    max: ask,
    stop: async () => {
      const m = await ask();
      await w.terminate();
      return m;
    },
  };
}

const ck = loadCheckpoint(values.model);
const before = rss();
say(`${values.component} of ${values.model} on ${ep}: RSS before loading ${gib(before)}`);
const t0 = performance.now();
const loaded = (extra = '') => {
  const ms = performance.now() - t0;
  say(
    `  loaded in ${(ms / 1000).toFixed(1)} s; peak RSS ${gib(peak())} (+${gib(peak() - before)}), settled ${gib(rss())} (+${gib(rss() - before)})${extra}`,
  );
};

if (values.component === 'transformer') {
  const form = graphFormFor(ep);
  const runner = StepRunner.forCheckpoint(ck, runtime, { ...form });
  const stat = await runner.prepare();
  loaded(`; ${stat.nodes} nodes`);
  const cfg = ck.transformerConfig;
  const side = Number(values.side);
  const geo = latentGeometry(side, side);
  const L = T5_LENGTH[ck.variant];
  const settled = rss();
  const sampler = rssSampler();
  sampler.reset();
  const out = await runner.run({
    timestep: modelTimestep(1000),
    guidance: cfg.guidanceEmbeds ? 3.5 : undefined,
    imgIds: latentImageIds(geo.rows, geo.cols),
    txtIds: textIds(L),
    main: {
      latents: gaussian(1, [geo.tokens, cfg.inChannels]),
      txt: gaussian(2, [L, cfg.jointAttentionDim]),
      pooled: gaussian(3, [cfg.pooledProjectionDim]),
    },
  });
  const stepPeak = await sampler.stop();
  say(
    `  plain step at ${side}² (${geo.tokens} + ${L} tokens): ${(out.ms / 1000).toFixed(2)} s; RSS during it up to ${gib(stepPeak)} (+${gib(stepPeak - settled)} over the loaded session: its activations)`,
  );
  await runner.release();
} else if (values.component === 't5') {
  const enc = new T5TextEncoder(ck.component('text_encoder_2'), runtime, { computeType: t5ComputeType(ep) });
  await enc.prepare(T5_LENGTH[ck.variant]);
  loaded();
  await enc.release();
} else if (values.component === 'clip') {
  const enc = await ClipTextEncoder.create(ck.component('text_encoder'), runtime);
  loaded();
  await enc.release();
} else if (values.component === 'vae') {
  const vae = new VaeCodec(ck.component('vae'), runtime);
  await vae.prepareDecoder();
  loaded();
  await vae.release();
} else {
  throw new Error(`--component must be transformer, t5, clip or vae (got ${values.component})`);
}
