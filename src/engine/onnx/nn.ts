import { attr, MS_DOMAIN, Value, type LinearWeight, type QuantLinear } from './graph.ts';
import {
  add,
  cast,
  concat,
  matmul,
  mul,
  neg,
  reshape,
  reshapeTo,
  shapeOf,
  sigmoid,
  slice,
  softmax,
  sub,
  transpose,
} from './ops.ts';

/** Neural-network building blocks over the op wrappers, in the graph's compute type. */

/**
 * y = x · Wᵀ + b with W stored [out, in] (PyTorch nn.Linear layout), x of any rank ≥ 2.
 * By default one com.microsoft.FusedMatMul(transB=1): measured on CPU with 128 MB of bf16 weights, it creates the
 * session in 2.5 s at 430 MB peak RSS, against 4.2 s and 690 MB for MatMul(x, Transpose(W)) whose Transpose ORT
 * folds at load (graph option `linear: 'transpose'` keeps plain ONNX ops for providers without the contrib op).
 */
export function linear(x: Value, w: LinearWeight, b?: Value): Value {
  const g = x.graph;
  if (!(w instanceof Value)) return quantLinear(x, w, b);
  const y =
    g.linearImpl === 'fused'
      ? g.op('FusedMatMul', [x, w], { transB: 1 }, { domain: MS_DOMAIN })
      : matmul(x, transpose(w, [1, 0]));
  return b ? add(y, b) : y;
}

/**
 * The same with a weight-only quantized W: com.microsoft.MatMulNBits dequantizes blocks of W to the activations'
 * type inside the kernel (the packed weight is what stays in memory). An affine format's per-block offsets
 * ("mins") are applied as x·W = MatMulNBits(x, q) − blockSums(x)·minsᵀ, one [.., K/block] × [K/block, N] product
 * in float32, so Q4_1/Q4_K/Q5_K load exactly instead of being re-rounded.
 */
function quantLinear(x: Value, w: QuantLinear, b?: Value): Value {
  const g = x.graph;
  const inputs = [x, w.packed, w.scales, w.zeros ?? null];
  while (inputs.at(-1) === null) inputs.pop();
  let y = g.op(
    'MatMulNBits',
    inputs,
    { K: w.K, N: w.N, bits: w.bits, block_size: w.block },
    { domain: MS_DOMAIN, name: `${w.name}/MatMulNBits` },
  );
  if (w.minsT) {
    const blocks = reshapeTo(cast(x, 'float32'), concat([shapeOf(x, 0, -1), g.ints([w.K / w.block, w.block])], 0));
    const sums = g.op('ReduceSum', [blocks, g.ints([-1])], { keepdims: 0 });
    // In the activations' type, which is not always the graph's: T5's fp16 graph keeps `wo` in float32.
    y = sub(y, cast(matmul(sums, w.minsT), x.dtype ?? g.computeType));
  }
  return b ? add(y, b) : y;
}

/** LayerNorm over the last axis of size `dim`; no affine parameters unless given (FLUX's norms have none). */
export function layerNorm(x: Value, dim: number, eps: number, scale?: Value, bias?: Value): Value {
  const g = x.graph;
  const s = scale ?? g.fill([dim], 1);
  return g.op('LayerNormalization', bias ? [x, s, bias] : [x, s], { axis: -1, epsilon: attr.float(eps) });
}

/** RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · scale. One node from opset 23 on. */
export function rmsNorm(x: Value, scale: Value, eps: number): Value {
  const g = x.graph;
  if (g.opset >= 23) return g.op('RMSNormalization', [x, scale], { axis: -1, epsilon: attr.float(eps) });
  const ms = g.op('ReduceMean', [mul(x, x), g.ints([-1])], { keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [add(ms, g.scalar(eps, x.dtype))])]);
  return mul(mul(x, inv), scale);
}

export function silu(x: Value): Value {
  return mul(x, sigmoid(x));
}

/** GELU with the tanh approximation (diffusers "gelu-approximate", T5's gelu_new). */
export function geluTanh(x: Value): Value {
  return x.graph.op('Gelu', [x], { approximate: 'tanh' });
}

/** Exact (erf) GELU. */
export function gelu(x: Value): Value {
  return x.graph.op('Gelu', [x]);
}

export interface AttentionOptions {
  heads: number;
  headDim: number;
  /**
   * Additive bias on the scores, broadcastable to [B, heads, S_q, S_kv] (e.g. a regional mask of 0 / -inf
   * built inside the graph). Must be given as a 4-D value.
   */
  bias?: Value;
  /** Score scale; default 1/√headDim. */
  scale?: number;
  /**
   * 'mha': com.microsoft.MultiHeadAttention (one fused node; what ORT's own FLUX tooling emits).
   * 'explicit': Transpose/MatMul/Softmax/MatMul, for providers without the contrib op.
   */
  impl?: 'mha' | 'explicit';
}

/**
 * Scaled dot-product attention softmax(Q·Kᵀ·scale + bias)·V over packed heads.
 * q [B, S_q, heads·headDim], k and v [B, S_kv, heads·headDim] → [B, S_q, heads·headDim].
 */
export function attention(q: Value, k: Value, v: Value, o: AttentionOptions): Value {
  const g = q.graph;
  const scale = o.scale ?? 1 / Math.sqrt(o.headDim);
  if ((o.impl ?? 'mha') === 'mha') {
    const inputs = [q, k, v, null, null, o.bias ?? null];
    while (inputs.length > 3 && inputs[inputs.length - 1] === null) inputs.pop();
    return g.op('MultiHeadAttention', inputs, { num_heads: o.heads, scale: attr.float(scale) }, { domain: MS_DOMAIN });
  }
  const heads = (x: Value) => transpose(reshape(x, [0, 0, o.heads, o.headDim]), [0, 2, 1, 3]);
  const qh = heads(q);
  const kt = transpose(reshape(k, [0, 0, o.heads, o.headDim]), [0, 2, 3, 1]);
  let scores = mul(matmul(qh, kt), g.scalar(scale, q.dtype));
  if (o.bias) scores = add(scores, o.bias);
  const out = matmul(softmax(scores, -1), heads(v));
  return reshape(transpose(out, [0, 2, 1, 3]), [0, 0, o.heads * o.headDim]);
}

/**
 * Rotary embedding on interleaved pairs (x₂ₚ, x₂ₚ₊₁) of the last axis, as FLUX/diffusers apply it:
 * y = x·cos + rot(x)·sin with rot(x)₂ₚ = −x₂ₚ₊₁, rot(x)₂ₚ₊₁ = x₂ₚ.
 * x [B, S, H, D]; cos, sin broadcastable to it (e.g. [S, 1, D]).
 */
export function ropeInterleaved(x: Value, cos: Value, sin: Value, headDim: number): Value {
  const pairs = reshape(x, [0, 0, 0, headDim / 2, 2]);
  const even = slice(pairs, [0], [1], [4]);
  const odd = slice(pairs, [1], [2], [4]);
  const rotated = reshape(concat([neg(odd), even], 4), [0, 0, 0, headDim]);
  return add(mul(x, cos), mul(rotated, sin));
}

/** x·(1 + scale) + shift, the AdaLN modulation (scale/shift broadcast over tokens). */
export function modulate(x: Value, scale: Value, shift: Value): Value {
  const g = x.graph;
  return add(mul(x, add(scale, g.scalar(1, x.dtype))), shift);
}

/**
 * In float16 graphs, clamps activations to ±65504 (the largest finite half) where diffusers does in FLUX's blocks:
 * FLUX's residual streams exceed the half range and would turn into inf and then NaN. Other types pass through.
 */
export function clampHalf(x: Value): Value {
  const g = x.graph;
  if (g.computeType !== 'float16') return x;
  return g.op('Clip', [x, g.scalar(-65504, 'float16'), g.scalar(65504, 'float16')]);
}
