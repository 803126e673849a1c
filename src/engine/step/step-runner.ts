import { performance } from 'node:perf_hooks';
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import type { FluxCheckpoint } from '../checkpoint/types.ts';
import { UserError } from '../../config/errors.ts';
import { concatFloat32 } from '../float32.ts';
import { createSession, ort, type RuntimeOptions } from '../runtime/session.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import { DEFAULT_UNROLLED_REGIONS } from './regional.ts';
import { buildStepGraph, type StepGraphOptions } from './step-graph.ts';
import { signatureKey, STEP_IO, type StepSignature } from './signature.ts';
import { LORA_IO, loraLayers } from '../lora/graph.ts';
import { repeatRow, type StepLora } from '../lora/feeds.ts';

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
  /** The job's styles (lora/feeds.ts); absent: no LoRA, the plain linears. */
  lora?: StepLora;
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
  /** What the session serves: "all layouts" (one graph for every step signature). */
  signature: string;
  createMs: number;
  nodes: number;
  runs: number;
  /** Runs per step signature (signatureKey), for logs and tests. */
  runsBy: Record<string, number>;
}

/** What the one step graph accepts; a layout outside these is refused before any step runs. */
export interface StepLimits {
  /** Regional streams: hard-binding boxes plus the repaint pre-pass. */
  regions: number;
  cells: number;
  /** Image tokens (a 2048² image has 16384). */
  tokens: number;
}

export const DEFAULT_STEP_LIMITS: StepLimits = { regions: 17, cells: 32, tokens: 16384 };

export type StepRunnerOptions = StepGraphOptions & { limits?: Partial<StepLimits> };

/**
 * Runs denoising steps on ONE session, built once: the step graph serves every layout (stream counts are tensor
 * dims, see step-graph.ts), so the transformer weights are in memory once and a new layout costs nothing to load.
 */
export class StepRunner {
  private session: Promise<{ session: ort.InferenceSession; stat: SessionStat }> | undefined;
  private stat: SessionStat | undefined;
  private layers: Map<string, readonly [number, number]> | undefined;
  private noLora: Record<string, ort.Tensor> | undefined;
  readonly limits: StepLimits;

  constructor(
    readonly cfg: FluxTransformerConfig,
    private readonly weights: NamedWeights,
    private readonly runtime: RuntimeOptions,
    private readonly opts: StepRunnerOptions = {},
  ) {
    this.limits = { ...DEFAULT_STEP_LIMITS, ...opts.limits };
    if (opts.regionalLoop === 'unrolled')
      this.limits.regions = Math.min(this.limits.regions, opts.maxRegions ?? DEFAULT_UNROLLED_REGIONS);
  }

  static forCheckpoint(ck: FluxCheckpoint, runtime: RuntimeOptions, opts: StepRunnerOptions = {}): StepRunner {
    return new StepRunner(ck.transformerConfig, ck.transformerWeights(), runtime, opts);
  }

  /** The linear layers a LoRA can adapt, by diffusers name without `.weight`: [out, in]. */
  get loraLayers(): Map<string, readonly [number, number]> {
    this.layers ??= loraLayers(this.weights);
    return this.layers;
  }

  /** A label of the transformer for messages. */
  get label(): string {
    return this.weights.label;
  }

  /** The session created so far (at most one), for logs and benchmarks. */
  get sessions(): readonly SessionStat[] {
    return this.stat ? [this.stat] : [];
  }

  /** Builds the step graph and creates its session (once); resolves to its stats. */
  async prepare(): Promise<SessionStat> {
    return (await this.open()).stat;
  }

  private open(): Promise<{ session: ort.InferenceSession; stat: SessionStat }> {
    this.session ??= (async () => {
      const graph = buildStepGraph(this.cfg, this.weights, this.opts);
      const { session, createMs } = await createSession(graph, this.runtime);
      this.stat = { signature: 'all layouts', createMs, nodes: graph.nodeCount, runs: 0, runsBy: {} };
      return { session, stat: this.stat };
    })();
    this.session.catch(() => {
      this.session = undefined;
    });
    return this.session;
  }

  /** Refuses a step shape beyond the limits, naming the limit (checked per plan before its first step). */
  checkLimits(sig: StepSignature, tokens: number): void {
    const regions = sig.boxes + (sig.prepass ? 1 : 0);
    const over = (what: string, got: number, max: number) => {
      throw new UserError(
        `this layout needs ${got} ${what}; the engine takes at most ${max}. Use fewer regions or a smaller image.`,
      );
    };
    if (regions > this.limits.regions)
      over('regional streams (hard-binding boxes + repaint pre-pass)', regions, this.limits.regions);
    if (sig.cells > this.limits.cells) over('soft-refinement cells', sig.cells, this.limits.cells);
    if (tokens > this.limits.tokens) over('image tokens (one per 16×16 pixels)', tokens, this.limits.tokens);
  }

  /** One denoising step: one run() of the step graph. */
  async run(f: StepFeeds): Promise<StepOutputs & { ms: number }> {
    const feeds = this.feeds(f);
    const { session, stat } = await this.open();
    const t0 = performance.now();
    const out = await session.run(feeds);
    const ms = performance.now() - t0;
    stat.runs++;
    const key = signatureKey(signatureOf(f));
    stat.runsBy[key] = (stat.runsBy[key] ?? 0) + 1;
    const C = this.cfg.outChannels;
    const velocity = out[STEP_IO.velocity]!.data as Float32Array;
    const regional = out[STEP_IO.rgVelocity]!.data as Float32Array;
    const streams = [...(f.boxes ?? []), ...(f.prepass ? [f.prepass] : [])];
    let at = 0;
    const perStream = streams.map((s) => {
      const n = (s.imgIds.length / 3) * C;
      const v = regional.subarray(at, at + n);
      at += n;
      return v;
    });
    return {
      velocity,
      boxes: perStream.slice(0, f.boxes?.length ?? 0),
      repaint: f.repaint ? (out[STEP_IO.repaint.velocity]!.data as Float32Array) : undefined,
      prepass: f.prepass ? perStream.at(-1) : undefined,
      ms,
    };
  }

  /**
   * Checks sizes and builds the ORT feeds: absent streams as zero-length axes, the SR crops padded to the largest, the
   * regional streams concatenated, and hard binding's paste resolved to one winner per token (the later box).
   * A mismatch is a programming error, named precisely.
   */
  feeds(f: StepFeeds): Record<string, ort.Tensor> {
    const { inChannels: C, jointAttentionDim: J, pooledProjectionDim: P } = this.cfg;
    const N = f.imgIds.length / 3;
    const L = f.txtIds.length / 3;
    if (!Number.isInteger(N) || !Number.isInteger(L) || N === 0 || L === 0)
      throw new Error('step feeds: img_ids and txt_ids must be non-empty [n, 3] tables');
    const out: Record<string, ort.Tensor> = {};
    const put = (name: string, data: Float32Array | BigInt64Array, dims: number[]) => {
      const want = dims.reduce((a, b) => a * b, 1);
      if (data.length !== want)
        throw new Error(`step feeds: ${name} has ${data.length} values, expected [${dims.join(', ')}]`);
      out[name] =
        data instanceof BigInt64Array ? new ort.Tensor('int64', data, dims) : new ort.Tensor('float32', data, dims);
    };
    const check = (name: string, data: Float32Array, want: number) => {
      if (data.length !== want) throw new Error(`step feeds: ${name} has ${data.length} values, expected ${want}`);
      return data;
    };
    const checkIndex = (name: string, idx: BigInt64Array, limit: number) => {
      for (const v of idx)
        if (v < 0n || v >= BigInt(limit)) throw new Error(`step feeds: ${name} holds ${v}, outside [0, ${limit})`);
    };
    put(STEP_IO.timestep, Float32Array.of(f.timestep), [1]);
    if (this.cfg.guidanceEmbeds) {
      if (f.guidance === undefined)
        throw new Error('step feeds: this transformer embeds guidance (FLUX.1-dev); a guidance value is required');
      put(STEP_IO.guidance, Float32Array.of(f.guidance), [1]);
    }
    put(STEP_IO.imgIds, f.imgIds, [N, 3]);
    put(STEP_IO.txtIds, f.txtIds, [L, 3]);

    // The main pass, and the repaint pass (batch 1, or 0 without one).
    const stream = (
      names: { latents: string; txt: string; pooled: string },
      s: StreamFeed | undefined,
      what: string,
    ) => {
      const n = s ? 1 : 0;
      put(names.latents, s ? check(`${what} latents`, s.latents, N * C) : new Float32Array(0), [n, N, C]);
      put(names.txt, s ? check(`${what} txt`, s.txt, L * J) : new Float32Array(0), [n, L, J]);
      put(names.pooled, s ? check(`${what} pooled`, s.pooled, P) : new Float32Array(0), [n, P]);
    };
    stream(STEP_IO, f.main, 'main');
    const rp = STEP_IO.repaint;
    stream(rp, f.repaint, 'repaint');
    if (f.repaint) {
      check('repaint mask', f.repaint.mask, N);
      put(rp.keep, f.repaint.mask, [N]);
      put(rp.keepSingle, f.repaint.single ? f.repaint.mask : new Float32Array(N).fill(1), [N]);
    } else {
      put(rp.keep, new Float32Array(0), [0]);
      put(rp.keepSingle, new Float32Array(0), [0]);
    }

    // Soft refinement.
    const S = f.sr?.sources.length ?? 0;
    put(STEP_IO.srDelta, Float32Array.of(f.sr?.delta ?? 0), [1]);
    if (f.sr) {
      if (S < 2) throw new Error(`step feeds: soft refinement needs at least 2 cells (got ${S})`);
      put(STEP_IO.srTxt, check('SR segments', f.sr.txt, S * L * J), [S, L, J]);
      if (f.repaint) {
        if (!f.repaint.srTxt)
          throw new Error('step feeds: the repaint pass needs its own SR segments when soft refinement is on');
        put(rp.srTxt, check('repaint SR segments', f.repaint.srTxt, S * L * J), [S, L, J]);
      } else {
        put(rp.srTxt, new Float32Array(0), [0, L, J]);
      }
      f.sr.sources.forEach((src, j) => checkIndex(`SR cell ${j} sources`, src, N));
      const total = f.sr.sources.reduce((n, s) => n + s.length, 0);
      if (total !== N) throw new Error(`step feeds: the cells cover ${total} tokens, the image has ${N}`);
      checkIndex('SR place', f.sr.place, N);
      const padded = padCells(f.sr.sources, f.sr.place);
      put(STEP_IO.srSource, padded.sources, [S, padded.width]);
      put(STEP_IO.srPlace, padded.place, [N]);
    } else {
      put(STEP_IO.srTxt, new Float32Array(0), [0, L, J]);
      put(rp.srTxt, new Float32Array(0), [0, L, J]);
      put(STEP_IO.srSource, new BigInt64Array(0), [0, 0]);
      put(STEP_IO.srPlace, new BigInt64Array(0), [0]);
    }

    // Regional streams: the boxes in list order, then the pre-pass.
    const regional: RegionFeed[] = [...(f.boxes ?? []), ...(f.prepass ? [f.prepass] : [])];
    const offsets = new BigInt64Array(regional.length + 1);
    regional.forEach((r, k) => {
      const M = r.imgIds.length / 3;
      if (!Number.isInteger(M) || M === 0) throw new Error(`step feeds: regional stream ${k} has no image tokens`);
      check(`regional stream ${k} latents`, r.latents, M * C);
      offsets[k + 1] = offsets[k]! + BigInt(M);
    });
    const T = Number(offsets[regional.length]);
    put(STEP_IO.rgLatents, stack(regional.map((r) => r.latents)), [1, T, C]);
    put(STEP_IO.rgImgIds, stack(regional.map((r) => r.imgIds)), [T, 3]);
    put(STEP_IO.rgOffsets, offsets, [regional.length + 1]);
    put(STEP_IO.rgTxt, stack(regional.map((r, k) => check(`regional stream ${k} txt`, r.txt, L * J))), [
      regional.length,
      L,
      J,
    ]);
    put(STEP_IO.rgPooled, stack(regional.map((r, k) => check(`regional stream ${k} pooled`, r.pooled, P))), [
      regional.length,
      P,
    ]);
    const winner = new Map<number, number>();
    (f.boxes ?? []).forEach((b, k) => {
      if (b.index.length !== b.imgIds.length / 3)
        throw new Error(`step feeds: box ${k} has ${b.index.length} token indices for ${b.imgIds.length / 3} tokens`);
      checkIndex(`box ${k} index`, b.index, N);
      const base = Number(offsets[k]);
      b.index.forEach((t, i) => winner.set(Number(t), base + i));
    });
    const tokens = [...winner.keys()].sort((a, b) => a - b);
    put(STEP_IO.pasteRows, BigInt64Array.from(tokens, BigInt), [tokens.length]);
    put(
      STEP_IO.pasteFrom,
      BigInt64Array.from(tokens, (t) => BigInt(winner.get(t)!)),
      [tokens.length],
    );
    if (this.opts.lora === false) {
      if (f.lora) throw new Error('step feeds: this step graph was built without LoRA inputs');
    } else {
      this.loraFeeds(f.lora, { N, repaint: !!f.repaint, regional: regional.map((r) => r.imgIds.length / 3) }, put, out);
    }
    return out;
  }

  /**
   * The LoRA inputs: every layer's factors (zero ranks where the job has none on it) and each stream's weight
   * rows. Without LoRA the same zero-size tensors serve every step.
   */
  private loraFeeds(
    lora: StepLora | undefined,
    shape: { N: number; repaint: boolean; regional: number[] },
    put: (name: string, data: Float32Array | BigInt64Array, dims: number[]) => void,
    out: Record<string, ort.Tensor>,
  ): void {
    const n = lora?.count ?? 0;
    const R = shape.regional.length;
    const T = shape.regional.reduce((a, b) => a + b, 0);
    if (!lora) {
      Object.assign(out, this.emptyLoraFactors());
      put(LORA_IO.img, new Float32Array(0), [shape.N, 0]);
      put(LORA_IO.txt, new Float32Array(0), [1, 0]);
      put(LORA_IO.rpImg, new Float32Array(0), [shape.repaint ? shape.N : 0, 0]);
      put(LORA_IO.rpTxt, new Float32Array(0), [shape.repaint ? 1 : 0, 0]);
      put(LORA_IO.regional, new Float32Array(0), [R, 0]);
      put(LORA_IO.regionalImg, new Float32Array(0), [T, 0]);
      return;
    }
    for (const [name, [N, K]] of this.loraLayers) {
      const l = lora.layers.get(name);
      const r = l?.rank ?? 0;
      put(LORA_IO.down(name), l?.down ?? new Float32Array(0), [r, K]);
      put(LORA_IO.up(name), l?.up ?? new Float32Array(0), [N, r]);
      put(LORA_IO.owner(name), l?.owner ?? new BigInt64Array(0), [r]);
    }
    for (const name of lora.layers.keys())
      if (!this.loraLayers.has(name)) throw new Error(`step feeds: LoRA layer ${name} is not a linear of this model`);
    put(LORA_IO.img, lora.main.img, [shape.N, n]);
    put(LORA_IO.txt, lora.main.txt, [1, n]);
    if (shape.repaint && !lora.repaint) throw new Error('step feeds: the repaint pass has no LoRA weights');
    put(LORA_IO.rpImg, shape.repaint ? lora.repaint!.img : new Float32Array(0), [shape.repaint ? shape.N : 0, n]);
    put(LORA_IO.rpTxt, shape.repaint ? lora.repaint!.txt : new Float32Array(0), [shape.repaint ? 1 : 0, n]);
    if (lora.regional.length !== R)
      throw new Error(`step feeds: ${lora.regional.length} LoRA rows for ${R} regional streams`);
    put(LORA_IO.regional, stack(lora.regional.length ? lora.regional : [new Float32Array(0)]), [R, n]);
    const perRow = lora.regional.map((row, k) => repeatRow(row, shape.regional[k]!));
    put(LORA_IO.regionalImg, stack(perRow.length ? perRow : [new Float32Array(0)]), [T, n]);
  }

  private emptyLoraFactors(): Record<string, ort.Tensor> {
    if (!this.noLora) {
      this.noLora = {};
      const none = new Float32Array(0);
      for (const [name, [N, K]] of this.loraLayers) {
        this.noLora[LORA_IO.down(name)] = new ort.Tensor('float32', none, [0, K]);
        this.noLora[LORA_IO.up(name)] = new ort.Tensor('float32', none, [N, 0]);
        this.noLora[LORA_IO.owner(name)] = new ort.Tensor('int64', new BigInt64Array(0), [0]);
      }
    }
    return this.noLora;
  }

  /** Releases the session. */
  async release(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    this.stat = undefined;
    try {
      await (await s)?.session.release();
    } catch {
      // a session that failed to build has nothing to release
    }
  }
}

/** One stream's feed as it is (no copy); several joined into one. */
function stack(parts: Float32Array[]): Float32Array {
  return parts.length === 1 ? parts[0]! : concatFloat32(parts);
}

/**
 * The cells' source lists as one [S, Q] table padded to the largest crop Q (a padded query reads token 0 and is
 * never placed), and `place` re-pointed from the concatenated lists to that table's rows.
 */
export function padCells(
  sources: BigInt64Array[],
  place: BigInt64Array,
): { sources: BigInt64Array; place: BigInt64Array; width: number } {
  const width = Math.max(...sources.map((s) => s.length));
  const table = new BigInt64Array(sources.length * width);
  const rowOf: number[] = [];
  sources.forEach((src, j) => {
    table.set(src, j * width);
    for (let p = 0; p < src.length; p++) rowOf.push(j * width + p);
  });
  return { sources: table, place: BigInt64Array.from(place, (r) => BigInt(rowOf[Number(r)]!)), width };
}

/** The σ a FLUX pipeline hands the transformer: the float32 timestep divided by 1000 in float32. */
export function modelTimestep(timestep: number): number {
  return Math.fround(Math.fround(timestep) / 1000);
}
