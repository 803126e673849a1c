/**
 * RAG step benchmark (issue 4): on the `bench` preset at 512×512, the time of one denoising step of each
 * step signature divided by the plain FLUX step, measured in one run, next to the ratio predicted by counting
 * the step graph's FLOPs and the ratio of upstream's implementation of the same step (RAG-SPEC §3.7, §6.3:
 * every SR cell re-runs the joint attention and the single blocks, ≈ (1 + S)× per step).
 *
 *   node --import tsx bench/rag.ts            (EXECUTION_PROVIDER / ORT_THREADS from the environment)
 */
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { benchSteps, type BenchCase } from './rag-workload.ts';
import { PLAIN_SIGNATURE, type StepSignature } from '../src/engine/step/signature.ts';
import { benchCheckpoint, fmt, peakRssMiB, runtimeFromEnv } from './support.ts';

const runtime = runtimeFromEnv();
const ck = loadCheckpoint(benchCheckpoint('dev'));
const runs = Number(process.env.RUNS ?? 3);

const sig = (s: Partial<StepSignature>): StepSignature => ({ ...PLAIN_SIGNATURE, ...s });
const cases: [string, BenchCase][] = [
  ['plain FLUX', PLAIN_SIGNATURE],
  ['δ = 0 (SR skipped, HB after r)', PLAIN_SIGNATURE],
  ['K=2 S=2, HB step', sig({ boxes: 2, cells: 2 })],
  ['K=2 S=2, after HB', sig({ cells: 2 })],
  ['S=2 unequal cells 1:3, after HB', { sig: sig({ cells: 2 }), cellWeights: [1, 3] }],
  ['K=4 S=4, HB step', sig({ boxes: 4, cells: 4 })],
  ['K=4 S=4, after HB', sig({ cells: 4 })],
  ['K=8 S=8, HB step', sig({ boxes: 8, cells: 8 })],
  ['K=8 S=8, after HB', sig({ cells: 8 })],
  ['repaint step (S=2)', sig({ cells: 2, repaint: true })],
  ['repaint of a repaint (stored parent, S=2)', sig({ cells: 2, repaint: true })],
  ['repaint pre-pass step (S=2)', sig({ cells: 2, prepass: true })],
];

process.stderr.write(`timing ${cases.length} step signatures, round-robin, ${runs} rounds...\n`);
const measured = await benchSteps(
  ck,
  cases.map(([, s]) => s),
  { runtime, runs },
);
const results = cases.map(([name], i) => [name, measured[i]!] as const);
const plain = results[0]![1];
const header = [
  'step',
  'min ms',
  'median ms',
  'measured ÷ plain',
  'FLOPs ÷ plain',
  'upstream ÷ plain',
  'measured ÷ FLOPs',
  'SR padding',
];
const rows = results.map(([name, r]) => [
  name,
  fmt(r.minMs, 0),
  fmt(r.medianMs, 0),
  `${fmt(r.minMs / plain.minMs)}×`,
  `${fmt(r.flops.total / plain.flops.total)}×`,
  `${fmt(r.upstreamFlops / plain.flops.total)}×`,
  fmt(r.minMs / plain.minMs / (r.flops.total / plain.flops.total)),
  `${fmt(100 * r.srPadding, 0)}%`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
process.stdout.write(
  `${runtime.executionProvider}, bench preset (inner ${ck.transformerConfig.inner}, ${ck.transformerConfig.numLayers}+${ck.transformerConfig.numSingleLayers} blocks), 512², T5 512, ${runs} round-robin rounds; ratios of the fastest runs\n`,
);
process.stdout.write(`${line(header)}\n`);
for (const r of rows) process.stdout.write(`${line(r)}\n`);
process.stdout.write(
  `one step session for every case, created in ${fmt(measured[0]!.createMs / 1000, 1)} s; peak RSS ${fmt(peakRssMiB(), 0)} MiB\n`,
);
