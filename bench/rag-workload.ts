/**
 * Benchmark hooks for bench/: build the step graph of one signature on a checkpoint, time its session creation
 * and its run(), and count its FLOPs (ours and upstream's), on synthetic inputs of a realistic layout.
 *
 *   const r = await benchStep(checkpoint, { boxes: 2, cells: 2, repaint: false, repaintSingle: false, prepass: false },
 *                             { runtime: { executionProvider: 'cpu', threads: 0 }, width: 512, height: 512 });
 *   r.stepMs / plain.stepMs          // measured ratio
 *   r.flops.total / plain.flops.total // predicted ratio; r.upstreamFlops / plain.flops.total: upstream's
 */
import { performance } from 'node:perf_hooks';
import type { FluxCheckpoint } from '../src/engine/checkpoint/types.ts';
import { latentImageIds, textIds } from '../src/engine/latents.ts';
import { gaussian } from '../src/engine/noise.ts';
import type { RuntimeOptions } from '../src/engine/runtime/session.ts';
import { graphFormFor } from '../src/engine/runtime/session.ts';
import { T5_LENGTH } from '../src/engine/tokenizers/t5.ts';
import type { TokenRect } from '../src/rag/boxes.ts';
import { stepFlops, upstreamStepFlops, type StepFlops } from '../src/engine/step/cost.ts';
import { boxIndex } from '../src/engine/step/selectors.ts';
import { signatureKey, type StepSignature } from '../src/engine/step/signature.ts';
import {
  StepRunner,
  type SessionStat,
  type StepFeeds,
  type StepRunnerOptions,
} from '../src/engine/step/step-runner.ts';

export interface StepBenchOptions {
  runtime: RuntimeOptions;
  /** Image size (multiples of 16); default 512 × 512. */
  width?: number;
  height?: number;
  /** T5 length; default by variant (512 dev, 256 schnell). */
  textLength?: number;
  /** Timed runs after `warmup` untimed ones; default 3 and 1. */
  runs?: number;
  warmup?: number;
  /** Graph options; default graphFormFor(provider). */
  graph?: StepRunnerOptions;
}

export interface StepBenchResult {
  signature: string;
  nodes: number;
  createMs: number;
  /** Median of the timed runs, and all of them. */
  stepMs: number;
  runsMs: number[];
  flops: StepFlops;
  upstreamFlops: number;
  layout: { tokens: number; textLength: number; boxes: TokenRect[]; cells: number; prepass?: TokenRect };
}

/**
 * The synthetic layout a signature is timed on: K boxes side by side across the middle 60 % of the height
 * (each 1/K of the width, like the official galleries), S equal full-height columns as SR cells, and a repaint mask
 * (and pre-pass box) of the central quarter of the image.
 */
export function benchLayout(
  sig: StepSignature,
  rows: number,
  cols: number,
  cellWeights?: number[],
): { boxes: TokenRect[]; cellOf: Int32Array; mask: Uint8Array; prepass: TokenRect } {
  const r0 = Math.floor(rows * 0.2);
  const r1 = Math.max(r0 + 1, Math.floor(rows * 0.8));
  const boxes = Array.from({ length: sig.boxes }, (_, k) => ({
    r0,
    r1,
    c0: Math.floor((k * cols) / sig.boxes),
    c1: Math.max(Math.floor((k * cols) / sig.boxes) + 1, Math.floor(((k + 1) * cols) / sig.boxes)),
  }));
  const cellOf = new Int32Array(rows * cols);
  // Column j of the SR grid spans weights[j] / Σweights of the width (equal columns by default).
  const weights = cellWeights ?? Array.from({ length: sig.cells }, () => 1);
  if (sig.cells && weights.length !== sig.cells)
    throw new Error(`benchLayout: ${weights.length} cell weights for ${sig.cells} cells`);
  const total = weights.reduce((a, b) => a + b, 0);
  const edges = weights.map((_, j) => Math.round((cols * weights.slice(0, j + 1).reduce((a, b) => a + b, 0)) / total));
  for (let t = 0; t < cellOf.length; t++)
    cellOf[t] = sig.cells
      ? Math.min(
          sig.cells - 1,
          edges.findIndex((e) => t % cols < e),
        )
      : 0;
  const prepass = {
    r0: Math.floor(rows / 4),
    r1: Math.floor(rows / 4) + Math.max(1, Math.floor(rows / 2)),
    c0: Math.floor(cols / 4),
    c1: Math.floor(cols / 4) + Math.max(1, Math.floor(cols / 2)),
  };
  const mask = new Uint8Array(rows * cols);
  for (let r = prepass.r0; r < prepass.r1; r++) for (let c = prepass.c0; c < prepass.c1; c++) mask[r * cols + c] = 1;
  return { boxes, cellOf, mask, prepass };
}

/** The synthetic feeds benchStep times a signature on (also for profiling one signature by hand). */
export function benchFeeds(
  ck: FluxCheckpoint,
  sig: StepSignature,
  o: { width?: number; height?: number; textLength?: number; cellWeights?: number[] } = {},
): {
  feeds: StepFeeds;
  geometry: { tokens: number; textLength: number; boxTokens: number[]; prepassTokens: number };
  layout: ReturnType<typeof benchLayout>;
} {
  const cfg = ck.transformerConfig;
  const width = o.width ?? 512;
  const height = o.height ?? 512;
  const rows = height / 16;
  const cols = width / 16;
  const N = rows * cols;
  const L = o.textLength ?? T5_LENGTH[ck.variant];
  const C = cfg.inChannels;
  const J = cfg.jointAttentionDim;
  const P = cfg.pooledProjectionDim;
  const lay = benchLayout(sig, rows, cols, o.cellWeights);
  let seed = 1;
  const rand = (n: number) => gaussian(seed++, [n]);
  const stream = (tokens: number) => ({ latents: rand(tokens * C), txt: rand(L * J), pooled: rand(P) });
  const size = (r: TokenRect) => (r.r1 - r.r0) * (r.c1 - r.c0);
  const feeds: StepFeeds = {
    timestep: 0.75,
    guidance: 3.5,
    imgIds: latentImageIds(rows, cols),
    txtIds: textIds(L),
    main: stream(N),
  };
  if (sig.cells) {
    const sources: bigint[][] = Array.from({ length: sig.cells }, () => []);
    lay.cellOf.forEach((j, t) => sources[j]!.push(BigInt(t)));
    const place = new BigInt64Array(N);
    let row = 0;
    sources.forEach((list) => list.forEach((t) => (place[Number(t)] = BigInt(row++))));
    feeds.sr = { txt: rand(sig.cells * L * J), delta: 0.5, sources: sources.map((l) => BigInt64Array.from(l)), place };
  }
  if (sig.boxes) {
    feeds.boxes = lay.boxes.map((b) => ({
      ...stream(size(b)),
      imgIds: latentImageIds(b.r1 - b.r0, b.c1 - b.c0),
      index: boxIndex(b, cols),
    }));
  }
  if (sig.repaint) {
    feeds.repaint = {
      ...stream(N),
      mask: Float32Array.from(lay.mask),
      single: sig.repaintSingle,
      ...(sig.cells ? { srTxt: rand(sig.cells * L * J) } : {}),
    };
  }
  if (sig.prepass)
    feeds.prepass = {
      ...stream(size(lay.prepass)),
      imgIds: latentImageIds(lay.prepass.r1 - lay.prepass.r0, lay.prepass.c1 - lay.prepass.c0),
    };
  return {
    feeds,
    geometry: { tokens: N, textLength: L, boxTokens: lay.boxes.map(size), prepassTokens: size(lay.prepass) },
    layout: lay,
  };
}

export async function benchStep(ck: FluxCheckpoint, sig: StepSignature, o: StepBenchOptions): Promise<StepBenchResult> {
  const cfg = ck.transformerConfig;
  const { feeds, geometry: geo, layout: lay } = benchFeeds(ck, sig, o);
  const N = geo.tokens;
  const L = geo.textLength;

  const runner = StepRunner.forCheckpoint(ck, o.runtime, { ...graphFormFor(o.runtime.executionProvider), ...o.graph });
  try {
    const stat = await runner.prepare();
    for (let i = 0; i < (o.warmup ?? 1); i++) await runner.run(feeds);
    const runsMs: number[] = [];
    for (let i = 0; i < (o.runs ?? 3); i++) {
      const t0 = performance.now();
      await runner.run(feeds);
      runsMs.push(performance.now() - t0);
    }
    const sorted = [...runsMs].sort((a, b) => a - b);
    return {
      signature: signatureKey(sig),
      nodes: stat.nodes,
      createMs: stat.createMs,
      stepMs: sorted[Math.floor(sorted.length / 2)]!,
      runsMs,
      flops: stepFlops(cfg, sig, geo),
      upstreamFlops: upstreamStepFlops(cfg, sig, geo),
      layout: {
        tokens: N,
        textLength: L,
        boxes: lay.boxes,
        cells: sig.cells,
        ...(sig.prepass ? { prepass: lay.prepass } : {}),
      },
    };
  } finally {
    await runner.release();
  }
}

export interface InterleavedBenchResult {
  signature: string;
  nodes: number;
  createMs: number;
  /** Fastest and median of the timed runs, and all of them in round order. */
  minMs: number;
  medianMs: number;
  runsMs: number[];
  flops: StepFlops;
  upstreamFlops: number;
  /** Extra SR crop queries from padding every cell to the largest: S·Q / N − 1 (boxes are never padded). */
  srPadding: number;
}

/** A timed case: a signature, optionally with unequal SR columns (weights of the width). */
export type BenchCase = StepSignature | { sig: StepSignature; cellWeights: number[] };

/**
 * Times several signatures against each other on a machine shared with other work, all on the one step session;
 * the timed runs go round-robin (one run of each signature per round), so a burst of outside load
 * lands on all signatures alike instead of on whichever was being timed; the fastest run of each is the least
 * disturbed one. Ratios of `minMs` are what to compare (timing one signature after another, a δ = 0 step, which
 * is the plain graph, measured 1.51× plain on the 2 shared cores).
 */
export async function benchSteps(
  ck: FluxCheckpoint,
  sigs: BenchCase[],
  o: StepBenchOptions,
): Promise<InterleavedBenchResult[]> {
  const cfg = ck.transformerConfig;
  const cases = sigs.map((c) => {
    const { sig, cellWeights } = 'sig' in c ? c : { sig: c, cellWeights: undefined };
    return { sig, ...benchFeeds(ck, sig, { ...o, cellWeights }), runsMs: [] as number[] };
  });
  const runner = StepRunner.forCheckpoint(ck, o.runtime, { ...graphFormFor(o.runtime.executionProvider), ...o.graph });
  try {
    const stats: SessionStat[] = [];
    for (const c of cases) {
      stats.push(await runner.prepare());
      for (let i = 0; i < (o.warmup ?? 1); i++) await runner.run(c.feeds);
    }
    for (let r = 0; r < (o.runs ?? 3); r++) {
      for (const c of cases) {
        const t0 = performance.now();
        await runner.run(c.feeds);
        c.runsMs.push(performance.now() - t0);
      }
    }
    return cases.map((c, i) => {
      const sorted = [...c.runsMs].sort((a, b) => a - b);
      return {
        signature: signatureKey(c.sig),
        nodes: stats[i]!.nodes,
        createMs: stats[i]!.createMs,
        minMs: sorted[0]!,
        medianMs: sorted[Math.floor(sorted.length / 2)]!,
        runsMs: c.runsMs,
        flops: stepFlops(cfg, c.sig, c.geometry),
        upstreamFlops: upstreamStepFlops(cfg, c.sig, c.geometry),
        srPadding: c.feeds.sr
          ? (c.feeds.sr.sources.length * Math.max(...c.feeds.sr.sources.map((x) => x.length))) / c.geometry.tokens - 1
          : 0,
      };
    });
  } finally {
    await runner.release();
  }
}
