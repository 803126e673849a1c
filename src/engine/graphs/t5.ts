import { UserError } from '../../config/errors.ts';
import {
  add,
  attention,
  cast,
  gather,
  geluTanh,
  Graph,
  linear,
  mul,
  rmsNorm,
  transpose,
  unsqueeze,
  type FloatType,
  type LinearWeight,
  type Value,
} from '../onnx/index.ts';
import { greater, where } from '../onnx/ops.ts';
import type { ExecutionProvider } from '../runtime/session.ts';
import { configReader, type ComponentInput, type TextGraphOptions } from './clip-config.ts';

/**
 * transformers `T5EncoderModel` (FLUX's text_encoder_2, T5 v1.1 XXL) as an ONNX graph: `shared`
 * embedding, pre-norm blocks of unscaled self-attention with a relative position bias (computed by
 * block 0, shared by all blocks) and a gated-GELU (tanh) feed-forward, T5's RMS LayerNorm, final norm.
 * FLUX passes no attention mask, so padding tokens take part in attention; so does this graph.
 *
 * The sequence length is fixed per graph (512 for FLUX.1-dev, 256 for schnell) because the bucket
 * table is a constant. Inputs: input_ids int64 [B, L]; output: last_hidden_state float32 [B, L, d_model]
 * whatever the compute type (bf16 cannot cross the JS boundary).
 * T5's activations overflow float16: compute in float32 (CPU) or bfloat16 (CUDA); a float16 graph (WebGPU, which
 * has no bf16) does what transformers does for float16 T5: `wo` in float32, a float32 residual stream from there
 * on, and the float16 clamp where a float16 stream remains.
 */
export interface T5EncoderConfig {
  dModel: number;
  heads: number;
  dKv: number;
  layers: number;
  buckets: number;
  maxDistance: number;
  eps: number;
  gated: boolean;
  act: 'gelu_new' | 'relu';
}

export function t5EncoderConfig(c: ComponentInput): T5EncoderConfig {
  const r = configReader(c.config, c.configFile);
  const proj = r.str('feed_forward_proj', 'relu');
  const gated = proj.startsWith('gated-') || c.config.is_gated_act === true;
  const actName = r.str('dense_act_fn', proj.replace(/^gated-/, ''));
  // T5 v1.1 configs say "gated-gelu", which transformers maps to gelu_new (the tanh approximation).
  const act =
    actName === 'gelu_new' || actName === 'gelu_pytorch_tanh' || (actName === 'gelu' && gated)
      ? 'gelu_new'
      : actName === 'relu'
        ? 'relu'
        : undefined;
  if (!act)
    throw new UserError(
      `${c.configFile}: activation "${actName}" is not supported (T5 v1.1 uses gated-gelu / gelu_new)`,
    );
  return {
    dModel: r.int('d_model'),
    heads: r.int('num_heads'),
    dKv: r.int('d_kv'),
    layers: r.int('num_layers'),
    buckets: r.int('relative_attention_num_buckets', 32),
    maxDistance: r.int('relative_attention_max_distance', 128),
    eps: r.num('layer_norm_epsilon', 1e-6),
    gated,
    act,
  };
}

/**
 * transformers' `_relative_position_bucket` (bidirectional) for every (query i, key j) pair, with
 * its float32 arithmetic reproduced (log, divide, scale, truncate), so bucket edges land where torch's do.
 */
export function relativePositionBuckets(length: number, numBuckets: number, maxDistance: number): Int32Array {
  const half = Math.floor(numBuckets / 2);
  const maxExact = Math.floor(half / 2);
  const f = Math.fround;
  const logRange = f(Math.log(maxDistance / maxExact));
  const byOffset = new Map<number, number>();
  const bucketOf = (rel: number): number => {
    let bucket = rel > 0 ? half : 0;
    const n = Math.abs(rel);
    if (n < maxExact) return bucket + n;
    const large = Math.trunc(f(f(f(Math.log(f(f(n) / f(maxExact)))) / logRange) * f(half - maxExact)));
    bucket += Math.min(maxExact + large, half - 1);
    return bucket;
  };
  const out = new Int32Array(length * length);
  for (let i = 0; i < length; i++) {
    for (let j = 0; j < length; j++) {
      const rel = j - i;
      let b = byOffset.get(rel);
      if (b === undefined) {
        b = bucketOf(rel);
        byOffset.set(rel, b);
      }
      out[i * length + j] = b;
    }
  }
  return out;
}

/**
 * The compute type T5 runs in on a provider: bf16 on CUDA (half the memory of fp32: 9.5 GB for T5-XXL, and the
 * range of fp32), fp16 on WebGPU (no bf16 there; clamped), fp32 on CPU (its EP has almost no bf16 kernels).
 */
export function t5ComputeType(ep: ExecutionProvider): FloatType {
  if (ep === 'cuda') return 'bfloat16';
  if (ep === 'webgpu') return 'float16';
  return 'float32';
}

/**
 * transformers' T5Block clamp for float16 hidden states, after the self-attention and after the feed-forward
 * sub-layer: clamp to ±(65504 − 1000) when any value is already inf, else to ±65504, so that the next residual
 * add cannot overflow again. Like transformers, only a float16 value is clamped (a float32 stream is left alone).
 */
export function clampT5Half(h: Value): Value {
  const g = h.graph;
  if (h.dtype !== 'float16') return h;
  const maxAbs = g.op('ReduceMax', [g.op('Abs', [h])], { keepdims: 0 });
  const limit = where(
    greater(maxAbs, g.scalar(65504, 'float16')),
    g.scalar(65504 - 1000, 'float16'),
    g.scalar(65504, 'float16'),
  );
  return g.op('Clip', [h, g.op('Neg', [limit]), limit]);
}

export interface T5GraphOptions extends TextGraphOptions {
  /** Token sequence length: 512 (FLUX.1-dev) or 256 (FLUX.1-schnell). */
  length: number;
}

export function buildT5EncoderGraph(c: ComponentInput, opts: T5GraphOptions): Graph {
  const cfg = t5EncoderConfig(c);
  const L = opts.length;
  if (!Number.isInteger(L) || L < 1)
    throw new UserError(`T5 sequence length must be a positive whole number (got ${L})`);
  const g = new Graph(`t5_encoder_${L}`, {
    computeType: opts.computeType ?? 'float32',
    linear: opts.linear,
    doc: `T5EncoderModel from ${c.configFile}, length ${L}`,
  });
  const W = (name: string): Value => g.weight(name, c.weights.source(name));
  const LW = (name: string, type?: FloatType): LinearWeight => g.linearWeight(name, c.weights.source(name), type);
  const D = cfg.dModel;

  const ids = g.input('input_ids', 'int64', ['B', L]);
  // transformers ties encoder.embed_tokens to shared and drops it on save; prefer shared.weight.
  const embedName = c.weights.has('shared.weight') ? 'shared.weight' : 'encoder.embed_tokens.weight';
  let h = g.embedding(embedName, c.weights.source(embedName), ids);
  const hiddenOut = (v: Value, i: number) => {
    if (opts.hiddenStates) g.output(cast(v, 'float32'), `hidden_states_${i}`, 'float32', ['B', L, D]);
  };
  hiddenOut(h, 0);

  // Position bias [1, heads, L, L] from block 0's table, gathered by the bucket of (j − i).
  const buckets = g.constant(relativePositionBuckets(L, cfg.buckets, cfg.maxDistance), [L, L], 'int32');
  const table = W('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
  const positionBias = g.scope('position_bias', () => unsqueeze(transpose(gather(table, buckets, 0), [2, 0, 1]), [0]));

  // float16 as transformers loads T5 in it: `wo` stays float32 (T5's _keep_in_fp32_modules), so from block 0's
  // feed-forward on the residual stream is float32 (fp16 + fp32 promotes); each sub-layer normalises it and
  // computes in float16. Other compute types: one type throughout.
  const half = g.computeType === 'float16';
  const norm = (x: Value, name: string): Value =>
    half && x.dtype === 'float32'
      ? cast(rmsNorm(x, cast(W(name), 'float32'), cfg.eps), 'float16')
      : rmsNorm(x, W(name), cfg.eps);
  const residual = (x: Value, y: Value): Value =>
    x.dtype === y.dtype ? add(x, y) : add(cast(x, 'float32'), cast(y, 'float32'));
  const fp32Weight = (name: string): Value => {
    const src = c.weights.source(name);
    return src.concat ? cast(W(name), 'float32') : cast(g.initializer(name, src), 'float32');
  };

  for (let i = 0; i < cfg.layers; i++) {
    g.gateWeightsOn(h);
    const p = `encoder.block.${i}.layer`;
    h = g.scope(`block.${i}`, () => {
      const proj = (name: string, x: Value) => linear(x, LW(`${p}.${name}.weight`));
      const x1 = norm(h, `${p}.0.layer_norm.weight`);
      // T5 does not scale the scores by 1/√d (it is folded into the weights at training).
      const a = attention(proj('0.SelfAttention.q', x1), proj('0.SelfAttention.k', x1), proj('0.SelfAttention.v', x1), {
        heads: cfg.heads,
        headDim: cfg.dKv,
        bias: positionBias,
        scale: 1,
        impl: opts.attention ?? 'mha',
      });
      const r1 = clampT5Half(residual(h, proj('0.SelfAttention.o', a)));
      const x2 = norm(r1, `${p}.1.layer_norm.weight`);
      const act = (v: Value) => (cfg.act === 'gelu_new' ? geluTanh(v) : g.op('Relu', [v]));
      const hidden = cfg.gated
        ? mul(act(proj('1.DenseReluDense.wi_0', x2)), proj('1.DenseReluDense.wi_1', x2))
        : act(proj('1.DenseReluDense.wi', x2));
      const wo = `${p}.1.DenseReluDense.wo.weight`;
      const quantized = !!c.weights.source(wo).nbits;
      const ff = half
        ? linear(cast(hidden, 'float32'), quantized ? LW(wo, 'float32') : fp32Weight(wo))
        : linear(hidden, LW(wo));
      return clampT5Half(residual(r1, ff));
    });
    if (i < cfg.layers - 1) hiddenOut(h, i + 1);
  }
  const last = norm(h, 'encoder.final_layer_norm.weight');
  // transformers reports the final-normed state as the last hidden_states entry.
  hiddenOut(last, cfg.layers);
  g.output(cast(last, 'float32'), 'last_hidden_state', 'float32', ['B', L, D]);
  return g;
}
