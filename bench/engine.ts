/**
 * Engine benchmark (issue 3): plain FLUX on the `bench` preset at 512×512 with T5 length 512.
 * Prints, from one run: seconds per denoising step and its ratio to the matmul-bound floor (the step's
 * FLOPs ÷ the GEMM throughput ORT reaches here, measured in the same run), text encoder and VAE times,
 * session creation times, and peak RSS.
 *
 *   node --import tsx bench/engine.ts            (EXECUTION_PROVIDER / ORT_THREADS from the environment)
 */
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { ClipTextEncoder } from '../src/engine/graphs/clip-encoder.ts';
import { openTransformer } from '../src/engine/graphs/flux-transformer-session.ts';
import { T5TextEncoder } from '../src/engine/graphs/t5-encoder.ts';
import { VaeCodec } from '../src/engine/graphs/vae-codec.ts';
import { GaussianNoise } from '../src/engine/noise.ts';
import { benchCheckpoint, fmt, gemmThroughput, peakRssMiB, runtimeFromEnv, timeMs } from './support.ts';
import { plainPassFlops } from '../src/engine/step/cost.ts';

const SIZE = 512;
const T5_LEN = 512;

const runtime = runtimeFromEnv();
const ck = loadCheckpoint(benchCheckpoint('dev'));
const cfg = ck.transformerConfig;
const N = (SIZE / 16) ** 2;
const noise = new GaussianNoise(1);
const randn = (n: number) => noise.next([n]);

const transformer = await openTransformer(ck, runtime);
const inputs = {
  hidden_states: randn(N * cfg.inChannels),
  encoder_hidden_states: randn(T5_LEN * cfg.jointAttentionDim),
  pooled_projections: randn(cfg.pooledProjectionDim),
  timestep: Float32Array.of(0.75),
  guidance: Float32Array.of(3.5),
  img_ids: Float32Array.from({ length: N * 3 }, (_, i) =>
    i % 3 === 0 ? 0 : i % 3 === 1 ? Math.floor(i / 3 / (SIZE / 16)) : (i / 3) % (SIZE / 16),
  ),
  txt_ids: new Float32Array(T5_LEN * 3),
};
const firstRunMs = await timeMs(() => transformer.run(inputs), 1, 0);
const stepMs = await timeMs(() => transformer.run(inputs), 5, 0);
await transformer.release();

const gemm = await gemmThroughput(N + T5_LEN, cfg.inner, runtime);
const flops = plainPassFlops(cfg, N, T5_LEN);
const floorMs = (flops / gemm.flops) * 1000;

const clip = await ClipTextEncoder.create(ck.component('text_encoder'), runtime);
const clipIds = [Array.from({ length: 77 }, (_, i) => (i === 0 ? 49406 : i < 20 ? 320 + i : 49407))];
const clipMs = await timeMs(() => clip.encode(clipIds), 5);
await clip.release();

const t5 = new T5TextEncoder(ck.component('text_encoder_2'), runtime);
const t5CreateMs = await t5.prepare(T5_LEN);
const t5Ids = [Array.from({ length: T5_LEN }, (_, i) => (i < 30 ? 100 + i : i === 30 ? 1 : 0))];
const t5Ms = await timeMs(() => t5.encode(t5Ids, T5_LEN), 3);
await t5.release();

const vae = new VaeCodec(ck.component('vae'), runtime);
const vaeCreateMs = await vae.prepareDecoder();
const latent = {
  data: randn(16 * (SIZE / 8) ** 2),
  shape: [1, 16, SIZE / 8, SIZE / 8] as [number, number, number, number],
};
const vaeMs = await timeMs(() => vae.decode(latent), 3);
await vae.release();

const rows: [string, string][] = [
  ['device', `${runtime.executionProvider}, threads ${runtime.threads || 'default'}`],
  [
    'model',
    `bench preset: inner ${cfg.inner}, ${cfg.numLayers} double + ${cfg.numSingleLayers} single blocks, ${SIZE}², ${N} image + ${T5_LEN} text tokens`,
  ],
  ['transformer session creation', `${fmt(transformer.createMs / 1000)} s`],
  ['first step (warm-up)', `${fmt(firstRunMs / 1000, 3)} s`],
  ['step time (median of 5)', `${fmt(stepMs / 1000, 3)} s`],
  ['step FLOPs', `${fmt(flops / 1e9, 1)} GFLOP`],
  ['GEMM throughput (ORT MatMul, best shape)', `${fmt(gemm.flops / 1e9, 1)} GFLOP/s at ${gemm.shape}`],
  ['matmul-bound floor', `${fmt(floorMs / 1000, 3)} s`],
  ['step ÷ floor', `${fmt(stepMs / floorMs)}×`],
  ['CLIP encode (77 tokens)', `${fmt(clipMs)} ms`],
  ['T5 encode (512 tokens)', `${fmt(t5Ms)} ms (session ${fmt(t5CreateMs / 1000)} s)`],
  ['VAE decode 512²', `${fmt(vaeMs)} ms (session ${fmt(vaeCreateMs / 1000)} s)`],
  ['VAE decode ÷ step', `${fmt(vaeMs / stepMs)}×`],
  ['peak RSS', `${fmt(peakRssMiB(), 0)} MiB`],
];
const w = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
