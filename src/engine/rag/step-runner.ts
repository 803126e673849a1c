import { performance } from 'node:perf_hooks';
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import type { FluxCheckpoint } from '../checkpoint/types.ts';
import { createSession, ort, type RuntimeOptions } from '../runtime/session.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import { buildStepGraph, type StepGraphOptions } from './step-graph.ts';
import { signatureKey, STEP_IO, type StepSignature } from './signature.ts';

/** One stream's conditioning and latents, float32, batch 1. */
export interface StreamFeed {
  /** Packed latents [tokens, 64]. */
  latents: Float32Array;
  /** T5 embeddings [L, joint_dim]. */
  txt: Float32Array;
  /** CLIP pooled [pooled_dim]. */
  pooled: Float32Array;
}

export interface RegionFeed extends StreamFeed {
  /** Local image ids [M, 3] (rows and columns from 0). */
  imgIds: Float32Array;
}

export interface BoxFeed extends RegionFeed {
  /** Global token index of each box token, row-major inside the box. */
  index: BigInt64Array;
}

export interface SrFeed {
  /** T5 embeddings of each cell's segment, [S, L, joint_dim] (cell order = BREAK order). */
  txt: Float32Array;
  delta: number;
  /** Per cell, the image tokens its crop queries (see rag/selectors.ts). */
  sources: BigInt64Array[];
  place: BigInt64Array;
}

/** Everything one step needs; which fields are present decides the step's signature. */
export interface StepFeeds {
  /** σ as the model sees it (see modelTimestep). */
  timestep: number;
  /** dev only. */
  guidance?: number;
  imgIds: Float32Array;
  txtIds: Float32Array;
  main: StreamFeed;
  sr?: SrFeed;
  boxes?: BoxFeed[];
  repaint?: StreamFeed & {
    /** Repaint SR segments [S, L, joint_dim]; required when `sr` is given. */
    srTxt?: Float32Array;
    /** [N], 1 = repaint token. */
    mask: Float32Array;
    single: boolean;
  };
  prepass?: RegionFeed;
}

export interface StepOutputs {
  velocity: Float32Array;
  boxes: Float32Array[];
  repaint?: Float32Array;
  prepass?: Float32Array;
}

export function signatureOf(f: StepFeeds): StepSignature {
  return {
    boxes: f.boxes?.length ?? 0,
    cells: f.sr ? f.sr.sources.length : 0,
    repaint: f.repaint !== undefined,
    repaintSingle: f.repaint?.single ?? false,
    prepass: f.prepass !== undefined,
  };
}

export interface SessionStat {
  signature: string;
  createMs: number;
  nodes: number;
  runs: number;
}

interface Entry {
  session: ort.InferenceSession;
  stat: SessionStat;
}

export interface StepRunnerOptions extends StepGraphOptions {
  /**
   * How many step sessions stay open. Every session holds its own copy of the transformer weights (on CPU ORT
   * folds the bf16 → fp32 Casts at load), so this bounds memory; a generation uses one to three signatures.
   */
  maxSessions?: number;
}

/**
 * Runs denoising steps: builds the step graph for each signature on first use and keeps the sessions in an LRU
 * of `maxSessions` (evicted sessions are released).
 */
export class StepRunner {
  private readonly cache = new Map<string, Promise<Entry>>();
  private readonly stats: SessionStat[] = [];
  private readonly maxSessions: number;

  constructor(
    readonly cfg: FluxTransformerConfig,
    private readonly weights: NamedWeights,
    private readonly runtime: RuntimeOptions,
    private readonly opts: StepRunnerOptions = {},
  ) {
    this.maxSessions = Math.max(1, opts.maxSessions ?? 2);
  }

  static forCheckpoint(ck: FluxCheckpoint, runtime: RuntimeOptions, opts: StepRunnerOptions = {}): StepRunner {
    return new StepRunner(ck.transformerConfig, ck.transformerWeights(), runtime, opts);
  }

  /** Every session created so far, in order (for logs and benchmarks). */
  get sessions(): readonly SessionStat[] {
    return this.stats;
  }

  /** Builds (or finds) the session of a signature; resolves to its stats. */
  async prepare(sig: StepSignature): Promise<SessionStat> {
    return (await this.entry(sig)).stat;
  }

  private async entry(sig: StepSignature): Promise<Entry> {
    const key = signatureKey(sig);
    let e = this.cache.get(key);
    if (e) {
      this.cache.delete(key);
      this.cache.set(key, e);
      return e;
    }
    while (this.cache.size >= this.maxSessions) {
      const [oldKey, old] = this.cache.entries().next().value!;
      this.cache.delete(oldKey);
      await (await old).session.release();
    }
    e = (async () => {
      const graph = buildStepGraph(this.cfg, this.weights, sig, this.opts);
      const { session, createMs } = await createSession(graph, this.runtime);
      const stat: SessionStat = { signature: key, createMs, nodes: graph.nodeCount, runs: 0 };
      this.stats.push(stat);
      return { session, stat };
    })();
    this.cache.set(key, e);
    e.catch(() => this.cache.delete(key));
    return e;
  }

  /** One denoising step: one run() of the signature's graph. */
  async run(f: StepFeeds): Promise<StepOutputs & { ms: number }> {
    const feeds = this.feeds(f);
    const entry = await this.entry(signatureOf(f));
    const t0 = performance.now();
    const out = await entry.session.run(feeds);
    entry.stat.runs++;
    const data = (name: string) => out[name]!.data as Float32Array;
    return {
      velocity: data(STEP_IO.velocity),
      boxes: (f.boxes ?? []).map((_, k) => data(STEP_IO.box(k).velocity)),
      repaint: f.repaint ? data(STEP_IO.repaint.velocity) : undefined,
      prepass: f.prepass ? data(STEP_IO.prepass.velocity) : undefined,
      ms: performance.now() - t0,
    };
  }

  /** Checks sizes and builds the ORT feeds. A mismatch is a programming error, named precisely. */
  feeds(f: StepFeeds): Record<string, ort.Tensor> {
    const { inChannels: C, jointAttentionDim: J, pooledProjectionDim: P } = this.cfg;
    const N = f.imgIds.length / 3;
    const L = f.txtIds.length / 3;
    if (!Number.isInteger(N) || !Number.isInteger(L) || N === 0 || L === 0) throw new Error('step feeds: img_ids and txt_ids must be non-empty [n, 3] tables');
    const out: Record<string, ort.Tensor> = {};
    const put = (name: string, data: Float32Array | BigInt64Array, dims: number[]) => {
      const want = dims.reduce((a, b) => a * b, 1);
      if (data.length !== want) throw new Error(`step feeds: ${name} has ${data.length} values, expected [${dims.join(', ')}]`);
      out[name] = data instanceof BigInt64Array ? new ort.Tensor('int64', data, dims) : new ort.Tensor('float32', data, dims);
    };
    const stream = (names: { latents: string; txt: string; pooled: string }, s: StreamFeed, tokens: number) => {
      put(names.latents, s.latents, [1, tokens, C]);
      put(names.txt, s.txt, [1, L, J]);
      put(names.pooled, s.pooled, [1, P]);
    };
    const checkIndex = (name: string, idx: BigInt64Array, limit: number) => {
      for (const v of idx) if (v < 0n || v >= BigInt(limit)) throw new Error(`step feeds: ${name} holds ${v}, outside [0, ${limit})`);
    };
    put(STEP_IO.timestep, Float32Array.of(f.timestep), [1]);
    if (this.cfg.guidanceEmbeds) {
      if (f.guidance === undefined) throw new Error('step feeds: this transformer embeds guidance (FLUX.1-dev); a guidance value is required');
      put(STEP_IO.guidance, Float32Array.of(f.guidance), [1]);
    }
    put(STEP_IO.imgIds, f.imgIds, [N, 3]);
    put(STEP_IO.txtIds, f.txtIds, [L, 3]);
    stream(STEP_IO, f.main, N);
    const S = f.sr?.sources.length ?? 0;
    if (f.sr) {
      if (S < 2) throw new Error(`step feeds: soft refinement needs at least 2 cells (got ${S})`);
      put(STEP_IO.srTxt, f.sr.txt, [S, L, J]);
      // [δ, 1 − δ], each rounded once from float64 as upstream's Python scalars are.
      put(STEP_IO.srDelta, Float32Array.of(f.sr.delta, 1 - f.sr.delta), [2]);
      let total = 0;
      f.sr.sources.forEach((src, j) => {
        checkIndex(STEP_IO.srSource(j), src, N);
        put(STEP_IO.srSource(j), src, [src.length]);
        total += src.length;
      });
      if (total !== N) throw new Error(`step feeds: the cells cover ${total} tokens, the image has ${N}`);
      checkIndex(STEP_IO.srPlace, f.sr.place, N);
      put(STEP_IO.srPlace, f.sr.place, [N]);
    }
    (f.boxes ?? []).forEach((b, k) => {
      const n = STEP_IO.box(k);
      const M = b.imgIds.length / 3;
      stream(n, b, M);
      put(n.imgIds, b.imgIds, [M, 3]);
      checkIndex(n.index, b.index, N);
      put(n.index, b.index, [M]);
    });
    if (f.repaint) {
      const n = STEP_IO.repaint;
      stream(n, f.repaint, N);
      put(n.mask, f.repaint.mask, [N]);
      if (S) {
        if (!f.repaint.srTxt) throw new Error('step feeds: the repaint pass needs its own SR segments when soft refinement is on');
        put(n.srTxt, f.repaint.srTxt, [S, L, J]);
      }
    }
    if (f.prepass) {
      const n = STEP_IO.prepass;
      const M = f.prepass.imgIds.length / 3;
      stream(n, f.prepass, M);
      put(n.imgIds, f.prepass.imgIds, [M, 3]);
    }
    return out;
  }

  /** Releases every open session. */
  async release(): Promise<void> {
    const all = [...this.cache.values()];
    this.cache.clear();
    for (const e of all) {
      try {
        await (await e).session.release();
      } catch {
        // a session that failed to build has nothing to release
      }
    }
  }
}

/** The σ a FLUX pipeline hands the transformer: the float32 timestep divided by 1000 in float32. */
export function modelTimestep(timestep: number): number {
  return Math.fround(Math.fround(timestep) / 1000);
}
