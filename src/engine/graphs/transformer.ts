/**
 * The FLUX.1 transformer (diffusers FluxTransformer2DModel, v0.31 semantics; RAG-SPEC §1.4) as one ONNX graph,
 * built from the checkpoint's own tensor names: one short function per block, each taking its streams as
 * arguments and returning the updated streams.
 *
 * Inputs (float32): hidden_states [B, N, 64] (packed latents), encoder_hidden_states [B, L, joint_dim] (T5),
 * pooled_projections [B, pooled_dim] (CLIP), timestep [B] (σ, ×1000 inside), guidance [B] (dev only; ×1000 inside),
 * img_ids [N, 3], txt_ids [L, 3]. Output: sample [B, N, 64] (the velocity prediction).
 *
 * Where RAG (next issue) hooks in — one run() per denoising step, with small selector inputs:
 * - Soft refinement: doubleBlock() already separates "image Q/K/V" from "text Q/K/V"; SR adds S extra text streams
 *   (extra encoder_hidden_states inputs, stacked on a stream axis) whose text Q/K/V are computed with the same
 *   weights, attends them with the shared image Q/K/V under an additive mask built in-graph from an int32 cell map
 *   (attention() takes `bias`), and blends the composite into the image attention output with δ (an input) before
 *   to_out. singleBlock() gets the SR image stream + S text streams the same way (RAG-SPEC §3.7).
 * - Hard binding: regional streams are extra (img, txt) stream pairs run through the same block functions
 *   (batched on B with their own RoPE tables from their local ids); after each block their rows are scattered into
 *   the global image stream at token-index inputs (ScatterND), gated by an "HB active" flag input.
 * - Repaint: another image stream whose rows are replaced outside the mask, again by index inputs.
 * The block functions therefore take every stream and the RoPE tables as arguments and never read graph inputs.
 */
import { Graph, type FloatType, type LinearWeight, type Value } from '../onnx/graph.ts';
import {
  attention,
  clampHalf,
  geluTanh,
  layerNorm,
  linear,
  modulate,
  rmsNorm,
  ropeInterleaved,
  silu,
} from '../onnx/nn.ts';
import { add, cast, chunk, concat, mul, reshape, shapeOf, sliceDynamic, unsqueeze } from '../onnx/ops.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import { TIME_PROJ_DIM, type FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import { ropeTables, timestepProjection } from './flux-embeddings.ts';
import { adapt, type LoraScope, type LoraTokens } from '../lora/graph.ts';

export interface TransformerGraphOptions {
  /** Attention kernel: com.microsoft.MultiHeadAttention (default) or plain ops. */
  attention?: 'mha' | 'explicit';
  /** Float type inside the graph (weights are cast to it). float32 on CPU. */
  computeType?: FloatType;
  /** How linear layers multiply (see Graph options): 'transpose' uses only standard ONNX ops. */
  linear?: 'fused' | 'transpose';
  /** RoPE angle precision; 'float32' for providers without double Sin/Cos (WebGPU). */
  ropePrecision?: 'float64' | 'float32';
  /**
   * Also output intermediates under the golden files' `dbg_*` names (temb, rope_cos/sin, x_embedder,
   * context_embedder, double<i>_txt/img, single<i>, norm_out), for locating a numerical difference.
   */
  intermediates?: boolean;
}

/** The graph's output name (the debug CLI contract, DESIGN.md §5). */
export const TRANSFORMER_OUTPUT = 'sample';

/** Epsilon of every LayerNorm and RMSNorm in the model. */
export const EPS = 1e-6;

/** What every block function needs: the graph, weights by name, config and the RoPE tables. */
export interface Ctx {
  g: Graph;
  cfg: FluxTransformerConfig;
  w: (name: string) => Value;
  /** A linear layer's weight: dense, or MatMulNBits parts for quantized weights. */
  lw: (name: string) => LinearWeight;
  attn: 'mha' | 'explicit';
  rope: { cos: Value; sin: Value };
  /** The step graph's LoRA inputs and the weight tables of the stream being computed (none: plain linears). */
  lora?: LoraScope;
}

/** A linear layer, plus the job's LoRA term on it in a step graph; `tokens` picks the LoRA weight table. */
export function lin(c: Ctx, prefix: string, x: Value, tokens?: LoraTokens): Value {
  return adapt(c.lora, prefix, x, linear(x, c.lw(`${prefix}.weight`), c.w(`${prefix}.bias`)), tokens);
}

/** Linear(SiLU(temb)) split into n modulation vectors, each [B, 1, D] to broadcast over tokens. */
export function modulation(c: Ctx, prefix: string, temb: Value, n: number): Value[] {
  return chunk(unsqueeze(lin(c, prefix, silu(temb)), [1]), n, 2);
}

/** Projects tokens to per-head Q or K with RMSNorm: [B, S, D] → [B, S, H, Dh]. */
export function headsNormed(c: Ctx, proj: string, norm: string, x: Value, tokens?: LoraTokens): Value {
  const heads = reshape(lin(c, proj, x, tokens), [0, 0, c.cfg.heads, c.cfg.headDim]);
  return rmsNorm(heads, c.w(`${norm}.weight`), EPS);
}

/** RoPE on [B, S, H, Dh] heads, then SDPA over packed heads → [B, S, D]. Token order must match the RoPE table. */
export function ropeAttention(c: Ctx, q: Value, k: Value, v: Value): Value {
  const { heads, headDim, inner } = c.cfg;
  // The rotation runs in the tables' precision (float32) and only its result is rounded to a 16-bit compute type.
  const rotated = (x: Value) =>
    reshape(
      cast(ropeInterleaved(cast(x, c.rope.cos.dtype ?? 'float32'), c.rope.cos, c.rope.sin, headDim), c.g.computeType),
      [0, 0, inner],
    );
  const qr = rotated(q);
  const kr = rotated(k);
  return attention(qr, kr, v, { heads, headDim, impl: c.attn });
}

/** time_text_embed: timestep (+ guidance) + pooled text → temb [B, D]. */
export function timeTextEmbed(c: Ctx, timestep: Value, guidance: Value | undefined, pooled: Value): Value {
  const mlp = (prefix: string, x: Value) => lin(c, `${prefix}.linear_2`, silu(lin(c, `${prefix}.linear_1`, x)));
  const proj = (x: Value) => cast(timestepProjection(x, TIME_PROJ_DIM), c.g.computeType);
  let temb = mlp('time_text_embed.timestep_embedder', proj(timestep));
  if (guidance) temb = add(temb, mlp('time_text_embed.guidance_embedder', proj(guidance)));
  return add(temb, mlp('time_text_embed.text_embedder', pooled));
}

/** One double-stream block (transformer_blocks.i): image and text streams, joint attention with text first. */
export function doubleBlock(c: Ctx, i: number, img: Value, txt: Value, temb: Value): { img: Value; txt: Value } {
  const p = `transformer_blocks.${i}`;
  return c.g.scope(p, () => {
    const D = c.cfg.inner;
    const [sh1, sc1, g1, sh2, sc2, g2] = modulation(c, `${p}.norm1.linear`, temb, 6) as [
      Value,
      Value,
      Value,
      Value,
      Value,
      Value,
    ];
    const [csh1, csc1, cg1, csh2, csc2, cg2] = modulation(c, `${p}.norm1_context.linear`, temb, 6) as [
      Value,
      Value,
      Value,
      Value,
      Value,
      Value,
    ];
    const hn = modulate(layerNorm(img, D, EPS), sc1, sh1);
    const en = modulate(layerNorm(txt, D, EPS), csc1, csh1);

    const qi = headsNormed(c, `${p}.attn.to_q`, `${p}.attn.norm_q`, hn);
    const ki = headsNormed(c, `${p}.attn.to_k`, `${p}.attn.norm_k`, hn);
    const vi = lin(c, `${p}.attn.to_v`, hn);
    const qt = headsNormed(c, `${p}.attn.add_q_proj`, `${p}.attn.norm_added_q`, en);
    const kt = headsNormed(c, `${p}.attn.add_k_proj`, `${p}.attn.norm_added_k`, en);
    const vt = lin(c, `${p}.attn.add_v_proj`, en);

    const o = ropeAttention(c, concat([qt, qi], 1), concat([kt, ki], 1), concat([vt, vi], 1));
    const L = shapeOf(txt, 1, 2);
    const ot = sliceDynamic(o, c.g.ints([0]), L, 1);
    const oi = sliceDynamic(o, L, c.g.ints([Number.MAX_SAFE_INTEGER]), 1);

    const ff = (prefix: string, x: Value) => lin(c, `${prefix}.net.2`, geluTanh(lin(c, `${prefix}.net.0.proj`, x)));
    let h = add(img, mul(g1, lin(c, `${p}.attn.to_out.0`, oi)));
    h = add(h, mul(g2, ff(`${p}.ff`, modulate(layerNorm(h, D, EPS), sc2, sh2))));
    let e = add(txt, mul(cg1, lin(c, `${p}.attn.to_add_out`, ot)));
    e = add(e, mul(cg2, ff(`${p}.ff_context`, modulate(layerNorm(e, D, EPS), csc2, csh2))));
    return { img: h, txt: clampHalf(e) };
  });
}

/** One single-stream block (single_transformer_blocks.i) over x = [txt; img]. */
export function singleBlock(c: Ctx, i: number, x: Value, temb: Value): Value {
  const p = `single_transformer_blocks.${i}`;
  return c.g.scope(p, () => {
    const [sh, sc, gate] = modulation(c, `${p}.norm.linear`, temb, 3) as [Value, Value, Value];
    const xn = modulate(layerNorm(x, c.cfg.inner, EPS), sc, sh);
    const mlp = geluTanh(lin(c, `${p}.proj_mlp`, xn));
    const q = headsNormed(c, `${p}.attn.to_q`, `${p}.attn.norm_q`, xn);
    const k = headsNormed(c, `${p}.attn.to_k`, `${p}.attn.norm_k`, xn);
    const a = ropeAttention(c, q, k, lin(c, `${p}.attn.to_v`, xn));
    return clampHalf(add(x, mul(gate, lin(c, `${p}.proj_out`, concat([a, mlp], 2)))));
  });
}

/** Builds the whole transformer graph for one checkpoint. */
export function buildTransformerGraph(
  cfg: FluxTransformerConfig,
  weights: NamedWeights,
  opts: TransformerGraphOptions = {},
): Graph {
  const g = new Graph(`flux-transformer-${cfg.guidanceEmbeds ? 'dev' : 'schnell'}`, {
    computeType: opts.computeType ?? 'float32',
    linear: opts.linear,
    doc: `FLUX.1 transformer from ${weights.label}`,
  });
  const io = 'float32';
  const hidden = g.input('hidden_states', io, ['B', 'N', cfg.inChannels]);
  const context = g.input('encoder_hidden_states', io, ['B', 'L', cfg.jointAttentionDim]);
  const pooled = g.input('pooled_projections', io, ['B', cfg.pooledProjectionDim]);
  const timestep = g.input('timestep', io, ['B']);
  const guidance = cfg.guidanceEmbeds ? g.input('guidance', io, ['B']) : undefined;
  const imgIds = g.input('img_ids', io, ['N', 3]);
  const txtIds = g.input('txt_ids', io, ['L', 3]);

  const toCompute = (v: Value) => cast(v, g.computeType);
  const c: Ctx = {
    g,
    cfg,
    attn: opts.attention ?? 'mha',
    w: (name) => g.weight(name, weights.source(name)),
    lw: (name) => g.linearWeight(name, weights.source(name)),
    // Text first, as the model concatenates [txt_ids; img_ids].
    rope: g.scope('rope', () =>
      ropeTables(concat([txtIds, imgIds], 0), cfg.axesDimsRope, cfg.ropeTheta, opts.ropePrecision),
    ),
  };
  const dbg = (name: string, v: Value) => {
    if (opts.intermediates) g.output(cast(v, io), `dbg_${name}`, io);
  };
  const temb = g.scope('time_text_embed', () => timeTextEmbed(c, timestep, guidance, toCompute(pooled)));
  dbg('temb', temb);
  dbg('rope_cos', reshape(c.rope.cos, [0, cfg.headDim]));
  dbg('rope_sin', reshape(c.rope.sin, [0, cfg.headDim]));
  let img = lin(c, 'x_embedder', toCompute(hidden));
  let txt = lin(c, 'context_embedder', toCompute(context));
  dbg('x_embedder', img);
  dbg('context_embedder', txt);
  for (let i = 0; i < cfg.numLayers; i++) {
    g.gateWeightsOn(img);
    ({ img, txt } = doubleBlock(c, i, img, txt, temb));
    dbg(`double${i}_txt`, txt);
    dbg(`double${i}_img`, img);
  }
  let x = concat([txt, img], 1);
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    g.gateWeightsOn(x);
    x = singleBlock(c, i, x, temb);
    dbg(`single${i}`, x);
  }
  g.gateWeightsOn(x);
  img = sliceDynamic(x, shapeOf(txt, 1, 2), g.ints([Number.MAX_SAFE_INTEGER]), 1);
  // norm_out is AdaLayerNormContinuous: (scale, shift) in this order, unlike the blocks' (shift, scale, ...).
  let out = g.scope('norm_out', () => {
    const [scale, shift] = modulation(c, 'norm_out.linear', temb, 2) as [Value, Value];
    const normed = modulate(layerNorm(img, cfg.inner, EPS), scale, shift);
    dbg('norm_out', normed);
    return lin(c, 'proj_out', normed);
  });
  out = cast(out, io);
  g.output(out, TRANSFORMER_OUTPUT, io, ['B', 'N', cfg.outChannels]);
  return g;
}
