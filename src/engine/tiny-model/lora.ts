/**
 * Random LoRA files for tests and benchmarks, in each of the layouts people have (diffusers/PEFT, kohya, BFL/ComfyUI,
 * XLabs), for any FLUX transformer config. The same (config, rank, seed) gives the same LoRA in every layout: each
 * BFL module's down (A) is drawn from its own seed, each engine layer's up (B) rows from theirs, so a fused qkv
 * written by kohya and the three q, k, v written by diffusers (the down copied into each) read back to identical
 * engine layers. `expected` is what a correct reader returns, computed here from the stored values without any of
 * the reader's code.
 */
import { createHash } from 'node:crypto';
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import { TIME_PROJ_DIM } from '../checkpoint/flux-config.ts';
import type { LoraFile, LoraFormat, LoraLayer } from '../lora/types.ts';
import { concatFloat32 } from '../float32.ts';
import { GaussianNoise } from '../noise.ts';
import { bf16ToFloat32Array, f16ToFloat32Array, float32ToBf16Array, float32ToF16Array } from '../weights/dtype.ts';
import { writeSafetensors, type HostTensor } from '../weights/safetensors.ts';

export interface TestLoraOptions {
  config: FluxTransformerConfig;
  layout: LoraFormat;
  rank: number;
  /** Written as each module's `.alpha` (XLabs files have none, so it is ignored there); omitted: no alpha tensors. */
  alpha?: number;
  /** Default 0. */
  seed?: number;
  /**
   * Which engine layers get a LoRA (default 'all': every linear the layout can express). 'attention': q, k, v and
   * output projections. Layouts that fuse (kohya, BFL: qkv and linear1; XLabs: qkv) write a fused module whole when
   * any of its layers is selected; diffusers writes exactly the selected layers.
   */
  layers?: 'all' | 'attention' | readonly string[] | ((layer: string) => boolean);
  /** Storage type of the factors (default bfloat16, as trainers save them). */
  dtype?: 'float32' | 'bfloat16' | 'float16';
  metadata?: Record<string, string>;
  /** Key prefix: diffusers 'transformer.' (default) or '' ; BFL 'diffusion_model.' (default) or ''; XLabs ''. */
  prefix?: string;
  /** Adds one CLIP text-encoder LoRA pair in the layout's spelling (readers must skip it with a warning). */
  textEncoder?: boolean;
  /** kohya's split_qkv: fused modules saved as rank n·r with a block-diagonal up (each part keeps rank r). */
  splitFused?: boolean;
}

/** One engine layer as a correct reader returns it. */
export interface ExpectedLoraLayer {
  down: Float32Array;
  up: Float32Array;
  rank: number;
  alphaScale: number;
}

export interface TestLora {
  path: string;
  keys: string[];
  expected: Map<string, ExpectedLoraLayer>;
}

/** A linear module of FLUX under its BFL name, with the engine layers its output rows feed, in order. */
interface Module {
  bfl: string;
  inFeatures: number;
  parts: { layer: string; rows: number }[];
  /** BFL's final adaLN is (shift, scale), the engine's norm_out.linear (scale, shift). */
  swapHalves?: boolean;
}

/** Every linear of the transformer as BFL names it (the writer's own table, independent of the reader's). */
export function fluxLoraModules(c: FluxTransformerConfig): Module[] {
  const D = c.inner;
  const one = (bfl: string, layer: string, inFeatures: number, rows: number, swapHalves = false): Module => ({
    bfl,
    inFeatures,
    parts: [{ layer, rows }],
    ...(swapHalves ? { swapHalves } : {}),
  });
  const mods: Module[] = [
    one('img_in', 'x_embedder', c.inChannels, D),
    one('txt_in', 'context_embedder', c.jointAttentionDim, D),
    one('time_in.in_layer', 'time_text_embed.timestep_embedder.linear_1', TIME_PROJ_DIM, D),
    one('time_in.out_layer', 'time_text_embed.timestep_embedder.linear_2', D, D),
    one('vector_in.in_layer', 'time_text_embed.text_embedder.linear_1', c.pooledProjectionDim, D),
    one('vector_in.out_layer', 'time_text_embed.text_embedder.linear_2', D, D),
  ];
  if (c.guidanceEmbeds)
    mods.push(
      one('guidance_in.in_layer', 'time_text_embed.guidance_embedder.linear_1', TIME_PROJ_DIM, D),
      one('guidance_in.out_layer', 'time_text_embed.guidance_embedder.linear_2', D, D),
    );
  for (let i = 0; i < c.numLayers; i++) {
    const b = `double_blocks.${i}`;
    const t = `transformer_blocks.${i}`;
    const qkv = (s: string, names: string[]): Module => ({
      bfl: `${b}.${s}_attn.qkv`,
      inFeatures: D,
      parts: names.map((n) => ({ layer: `${t}.attn.${n}`, rows: D })),
    });
    mods.push(
      qkv('img', ['to_q', 'to_k', 'to_v']),
      qkv('txt', ['add_q_proj', 'add_k_proj', 'add_v_proj']),
      one(`${b}.img_attn.proj`, `${t}.attn.to_out.0`, D, D),
      one(`${b}.txt_attn.proj`, `${t}.attn.to_add_out`, D, D),
      one(`${b}.img_mlp.0`, `${t}.ff.net.0.proj`, D, c.mlp),
      one(`${b}.img_mlp.2`, `${t}.ff.net.2`, c.mlp, D),
      one(`${b}.txt_mlp.0`, `${t}.ff_context.net.0.proj`, D, c.mlp),
      one(`${b}.txt_mlp.2`, `${t}.ff_context.net.2`, c.mlp, D),
      one(`${b}.img_mod.lin`, `${t}.norm1.linear`, D, 6 * D),
      one(`${b}.txt_mod.lin`, `${t}.norm1_context.linear`, D, 6 * D),
    );
  }
  for (let i = 0; i < c.numSingleLayers; i++) {
    const b = `single_blocks.${i}`;
    const t = `single_transformer_blocks.${i}`;
    mods.push(
      {
        bfl: `${b}.linear1`,
        inFeatures: D,
        parts: [
          ...['to_q', 'to_k', 'to_v'].map((n) => ({ layer: `${t}.attn.${n}`, rows: D })),
          { layer: `${t}.proj_mlp`, rows: c.mlp },
        ],
      },
      one(`${b}.linear2`, `${t}.proj_out`, D + c.mlp, D),
      one(`${b}.modulation.lin`, `${t}.norm.linear`, D, 3 * D),
    );
  }
  mods.push(
    one('final_layer.linear', 'proj_out', D, c.outChannels),
    one('final_layer.adaLN_modulation.1', 'norm_out.linear', D, 2 * D, true),
  );
  return mods;
}

/** XLabs' processors hold only attention LoRAs; a single block's qkv_lora is linear1's q, k, v rows, not the MLP's. */
function xlabsModule(m: Module): { name: string; module: Module } | undefined {
  const d = /^double_blocks\.(\d+)\.(img|txt)_attn\.(qkv|proj)$/.exec(m.bfl);
  if (d) return { name: `double_blocks.${d[1]}.processor.${d[3]}_lora${d[2] === 'img' ? 1 : 2}`, module: m };
  const s = /^single_blocks\.(\d+)\.(linear1|linear2)$/.exec(m.bfl);
  if (!s) return undefined;
  if (s[2] === 'linear2') return { name: `single_blocks.${s[1]}.processor.proj_lora`, module: m };
  return {
    name: `single_blocks.${s[1]}.processor.qkv_lora`,
    module: { ...m, parts: m.parts.filter((p) => !p.layer.endsWith('.proj_mlp')) },
  };
}

const ATTENTION = /\.(to_q|to_k|to_v|to_out\.0|add_q_proj|add_k_proj|add_v_proj|to_add_out)$/;

function selector(layers: TestLoraOptions['layers']): (layer: string) => boolean {
  if (layers === undefined || layers === 'all') return () => true;
  if (layers === 'attention') return (l) => ATTENTION.test(l);
  if (typeof layers === 'function') return layers;
  const set = new Set(layers);
  return (l) => set.has(l);
}

/** A seed of its own for each tensor, so adding or dropping layers never changes another's values. */
function tensorSeed(seed: number, name: string): number {
  return createHash('sha256').update(`${seed}\0${name}`).digest().readUIntBE(0, 6);
}

function draw(seed: number, name: string, n: number, scale: number): Float32Array {
  const v = new GaussianNoise(tensorSeed(seed, name)).next([n]);
  for (let i = 0; i < n; i++) v[i] = v[i]! * scale;
  return v;
}

/** The stored tensor and the float32 values a reader gets back from it. */
function store(values: Float32Array, shape: number[], dtype: TestLoraOptions['dtype']): [HostTensor, Float32Array] {
  if (dtype === 'float32') return [{ dtype, shape, data: values }, values];
  if (dtype === 'float16') {
    const bits = float32ToF16Array(values);
    return [{ dtype, shape, data: bits }, f16ToFloat32Array(bits)];
  }
  const bits = float32ToBf16Array(values);
  return [{ dtype: 'bfloat16', shape, data: bits }, bf16ToFloat32Array(bits)];
}

/** Columns [c0, c0 + width) of rows [r0, r0 + rows) of a row-major [*, cols] matrix. */
function subMatrix(m: Float32Array, cols: number, r0: number, rows: number, c0: number, width: number): Float32Array {
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(m.subarray((r0 + r) * cols + c0, (r0 + r) * cols + c0 + width), r * width);
  return out;
}

/** kohya's split_qkv layout: downs stacked, ups on the block diagonal of an [Σ rows, n·r] matrix. */
function blockDiagonal(ups: Float32Array[], rows: number[], r: number): Float32Array {
  const n = ups.length;
  const out = new Float32Array(rows.reduce((a, b) => a + b, 0) * n * r);
  let row0 = 0;
  ups.forEach((up, j) => {
    for (let row = 0; row < rows[j]!; row++) out.set(up.subarray(row * r, (row + 1) * r), (row0 + row) * n * r + j * r);
    row0 += rows[j]!;
  });
  return out;
}

function keyNames(layout: LoraFormat, prefix: string | undefined) {
  switch (layout) {
    case 'diffusers': {
      const p = prefix ?? 'transformer.';
      return {
        down: (m: string) => `${p}${m}.lora_A.weight`,
        up: (m: string) => `${p}${m}.lora_B.weight`,
        alpha: (m: string) => `${p}${m}.alpha`,
      };
    }
    case 'kohya': {
      const k = (m: string) => `lora_unet_${m.replace(/\./g, '_')}`;
      return {
        down: (m: string) => `${k(m)}.lora_down.weight`,
        up: (m: string) => `${k(m)}.lora_up.weight`,
        alpha: (m: string) => `${k(m)}.alpha`,
      };
    }
    case 'bfl': {
      const p = prefix ?? 'diffusion_model.';
      return {
        down: (m: string) => `${p}${m}.lora_A.weight`,
        up: (m: string) => `${p}${m}.lora_B.weight`,
        alpha: (m: string) => `${p}${m}.alpha`,
      };
    }
    case 'xlabs': {
      const p = prefix ?? '';
      return { down: (m: string) => `${p}${m}.down.weight`, up: (m: string) => `${p}${m}.up.weight`, alpha: undefined };
    }
  }
}

const TEXT_ENCODER_MODULE: Record<LoraFormat, string> = {
  diffusers: 'text_encoder.text_model.encoder.layers.0.self_attn.q_proj',
  kohya: 'lora_te1_text_model_encoder_layers_0_self_attn_q_proj',
  bfl: 'text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj',
  xlabs: 'lora_te1_text_model_encoder_layers_0_self_attn_q_proj',
};

/** Writes a random LoRA for `opts.config` in `opts.layout` to `path` and returns what reading it must give. */
export function writeTestLora(path: string, opts: TestLoraOptions): TestLora {
  const { config, layout, rank } = opts;
  if (!Number.isInteger(rank) || rank < 1) throw new RangeError(`rank must be a whole number ≥ 1 (got ${rank})`);
  const seed = opts.seed ?? 0;
  const dtype = opts.dtype ?? 'bfloat16';
  const selected = selector(opts.layers);
  const names = keyNames(layout, opts.prefix);
  const alpha = layout === 'xlabs' ? undefined : opts.alpha;
  const tensors: Record<string, HostTensor> = {};
  const expected = new Map<string, ExpectedLoraLayer>();
  const alphaTensor = (): HostTensor => ({ dtype: 'float32', shape: [], data: Float32Array.of(alpha!) });

  for (const full of fluxLoraModules(config)) {
    const x = layout === 'xlabs' ? xlabsModule(full) : { name: full.bfl, module: full };
    if (!x || !x.module.parts.some((p) => selected(p.layer))) continue;
    const m = x.module;
    const down = draw(seed, `${full.bfl}.down`, rank * m.inFeatures, 1 / Math.sqrt(m.inFeatures));
    const ups = m.parts.map((p) => draw(seed, `${p.layer}.up`, p.rows * rank, 1 / Math.sqrt(rank)));
    if (layout === 'diffusers') {
      m.parts.forEach((p, j) => {
        if (!selected(p.layer)) return;
        const [dt, dv] = store(down, [rank, m.inFeatures], dtype);
        const [ut, uv] = store(ups[j]!, [p.rows, rank], dtype);
        tensors[names.down(p.layer)] = dt;
        tensors[names.up(p.layer)] = ut;
        if (alpha !== undefined) tensors[names.alpha!(p.layer)] = alphaTensor();
        expected.set(p.layer, { down: dv, up: uv, rank, alphaScale: alpha ? alpha / rank : 1 });
      });
      continue;
    }
    const n = m.parts.length;
    const split = opts.splitFused === true && layout === 'kohya' && n > 1;
    const fileRank = split ? n * rank : rank;
    // The file's up in BFL row order: swapped halves for the final adaLN, parts stacked (or block-diagonal).
    const fileUps = m.swapHalves ? [ups[0]!.slice(ups[0]!.length / 2), ups[0]!.slice(0, ups[0]!.length / 2)] : ups;
    const upValues = split
      ? blockDiagonal(
          fileUps,
          m.parts.map((p) => p.rows),
          rank,
        )
      : concatFloat32(fileUps);
    const downValues = split
      ? concatFloat32(
          m.parts.map((p) => draw(seed, `${p.layer}.split-down`, rank * m.inFeatures, 1 / Math.sqrt(m.inFeatures))),
        )
      : down;
    const totalRows = m.parts.reduce((a, p) => a + p.rows, 0);
    const [dt, dv] = store(downValues, [fileRank, m.inFeatures], dtype);
    const [ut, uv] = store(upValues, [totalRows, fileRank], dtype);
    tensors[names.down(x.name)] = dt;
    tensors[names.up(x.name)] = ut;
    if (alpha !== undefined) tensors[names.alpha!(x.name)] = alphaTensor();
    const alphaScale = alpha ? alpha / fileRank : 1;
    let row = 0;
    m.parts.forEach((p, j) => {
      // Back in the engine's row order: for the swapped adaLN that is the second half first.
      let up: Float32Array = subMatrix(uv, fileRank, row, p.rows, split ? j * rank : 0, split ? rank : fileRank);
      if (m.swapHalves) {
        const half = up.length / 2;
        up = concatFloat32([up.subarray(half), up.subarray(0, half)]);
      }
      const d = split ? dv.slice(j * rank * m.inFeatures, (j + 1) * rank * m.inFeatures) : dv;
      expected.set(p.layer, { down: d, up, rank: split ? rank : fileRank, alphaScale });
      row += p.rows;
    });
  }
  if (opts.textEncoder) {
    const te = TEXT_ENCODER_MODULE[layout];
    const suffix = layout === 'kohya' || layout === 'xlabs' ? ['lora_down', 'lora_up'] : ['lora_A', 'lora_B'];
    tensors[`${te}.${suffix[0]}.weight`] = store(draw(seed, `${te}.down`, rank * 16, 0.25), [rank, 16], dtype)[0];
    tensors[`${te}.${suffix[1]}.weight`] = store(draw(seed, `${te}.up`, 16 * rank, 0.25), [16, rank], dtype)[0];
  }
  writeSafetensors(path, tensors, opts.metadata);
  return { path, keys: Object.keys(tensors), expected };
}

/** Uniform values in [−0.5, 0.5) from a 32-bit seed (mulberry32): the same seed gives the same LoRA anywhere. */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

export interface RandomLoraOptions {
  rank: number;
  seed: number;
  /** Default the rank (scale 1). */
  alpha?: number;
  /** The layers to adapt (default all of them). */
  only?: (layer: string) => boolean;
  path?: string;
  /** Multiplies B: 0.1 keeps a style's change bounded at FLUX's width (benchmarks); default 1. */
  upScale?: number;
}

/**
 * A LoRA already in the engine's form, without a file: random factors on `layers` (engine name → [out, in]), for
 * tests and benchmarks of the engine itself (the file readers are tested with writeTestLora's files).
 */
export function randomLoraFile(layers: Map<string, readonly [number, number]>, o: RandomLoraOptions): LoraFile {
  const r = uniform(o.seed);
  const upScale = o.upScale ?? 1;
  const out = new Map<string, LoraLayer>();
  for (const [name, [N, K]] of layers) {
    if (o.only && !o.only(name)) continue;
    const down = Float32Array.from({ length: o.rank * K }, () => r() / Math.sqrt(K));
    const up = Float32Array.from({ length: N * o.rank }, () => (upScale * r()) / Math.sqrt(o.rank));
    out.set(name, { down, up, rank: o.rank, inFeatures: K, outFeatures: N, alphaScale: (o.alpha ?? o.rank) / o.rank });
  }
  return {
    path: o.path ?? `lora-${o.seed}.safetensors`,
    sha256: String(o.seed).padStart(64, '0'),
    format: 'diffusers',
    layers: out,
    meta: { triggerWords: [] },
    warnings: [],
  };
}
