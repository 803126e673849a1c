import type { Graph, Value } from '../onnx/graph.ts';
import { cast, concat, cos, mul, reshape, sin, slice, unsqueeze } from '../onnx/ops.ts';

/**
 * FLUX's two positional encodings, built inside the graph from the raw inputs so that a step's run() takes
 * only σ, guidance and the ids: the sinusoidal timestep/guidance projection and the 3-axis RoPE tables.
 */

/**
 * Frequencies of diffusers' get_timestep_embedding(num_channels=dim, downscale_freq_shift=0), rounded at each step
 * as PyTorch does them in float32: exp((−ln 10000 · k) / (dim/2)).
 */
export function timestepFrequencies(dim: number): Float32Array {
  const half = dim / 2;
  const c = Math.fround(-Math.log(10000));
  return Float32Array.from({ length: half }, (_, k) => Math.fround(Math.exp(Math.fround(Math.fround(c * k) / half))));
}

/**
 * The sinusoidal projection [cos(t·f), sin(t·f)] (flip_sin_to_cos) of t = 1000·x, for x [B] → [B, dim].
 * x is σ (or the guidance scale) exactly as the pipeline passes it; the ×1000 happens here as in the model.
 */
export function timestepProjection(x: Value, dim: number): Value {
  const g = x.graph;
  const t = mul(x, g.scalar(1000, 'float32'));
  const args = mul(unsqueeze(t, [1]), g.constant(timestepFrequencies(dim), [1, dim / 2], 'float32'));
  return concat([cos(args), sin(args)], 1);
}

/**
 * RoPE tables for FluxPosEmbed(theta, axes_dim): ids [S, 3] → cos, sin [S, 1, Σaxes] (broadcast over heads),
 * each axis contributing repeat-interleaved pairs cos(id_i · θ^(−2j/d_i)).
 * `precision` 'float64' computes angles and cos/sin in double and rounds once, as diffusers does; 'float32' is for
 * providers without double kernels (WebGPU), at ~1e-5 rad error for positions near 100.
 */
export function ropeTables(
  ids: Value,
  axes: number[],
  theta: number,
  precision: 'float64' | 'float32' = 'float64',
): { cos: Value; sin: Value } {
  const g: Graph = ids.graph;
  const pos = cast(ids, precision);
  const cosParts: Value[] = [];
  const sinParts: Value[] = [];
  axes.forEach((d, i) => {
    const freqs = Array.from({ length: d / 2 }, (_, j) => 1 / theta ** ((2 * j) / d));
    const angle = mul(slice(pos, [i], [i + 1], [1]), g.constant(freqs, [1, d / 2], precision)); // [S, d/2]
    const interleave = (v: Value) => {
      const col = unsqueeze(v, [2]); // [S, d/2, 1]
      return reshape(concat([col, col], 2), [0, d]); // [S, d]: each value twice in a row
    };
    cosParts.push(interleave(cos(angle)));
    sinParts.push(interleave(sin(angle)));
  });
  // float32 whatever the compute type: the rotation is done in float32 (rotate(), ropeAttention()).
  const finish = (parts: Value[]) => unsqueeze(cast(concat(parts, 1), 'float32'), [1]);
  return { cos: finish(cosParts), sin: finish(sinParts) };
}
