/**
 * LoRA as inputs of the step graph (docs/styles.md): the resident session is never rebuilt, so every adapted
 * linear reads its low-rank factors from graph inputs fed per run:
 *
 *   y = W·x + b + ((x·Aᵀ) ⊙ w[tokens, owner])·Bᵀ
 *
 * A = `down` [Rl, K] and B = `up` [N, Rl] hold the ranks of every LoRA of the job on that layer side by side (Rl a
 * symbolic dimension; the user's scale × alpha/rank is folded into B on the host), `owner` [Rl] says which LoRA
 * of the job each rank row belongs to, and w is the stream's weight table [tokens, LoRAs]: 1 for a global LoRA,
 * a region's soft mask for a region LoRA in the main pass, one row per regional stream. So one graph serves
 * global and regional styles, and a token outside a region's mask multiplies its LoRA's rows by exactly 0.
 *
 * The term sits in an If (Rl > 0) per layer: a job without LoRA runs the nodes it ran before LoRA existed (the
 * If's else branch hands the plain output through; measured in bench/lora.ts).
 */
import type { Graph, Value } from '../onnx/graph.ts';
import { linear } from '../onnx/nn.ts';
import { add, cast, concat, expand, gather, greater, matmul, mul, shapeOf, transpose } from '../onnx/ops.ts';
import { ifElse } from '../onnx/control.ts';
import type { NamedWeights } from '../weights/named-weights.ts';

/** Graph input names of the LoRA factors and weight tables (float32 unless said otherwise). */
export const LORA_IO = {
  /** A of layer `name` [Rl, in]. */
  down: (layer: string) => `lora:${layer}:down`,
  /** B of layer `name` [out, Rl], scale and alpha/rank folded in. */
  up: (layer: string) => `lora:${layer}:up`,
  /** int64 [Rl]: the job LoRA each rank row belongs to (a column of the weight tables). */
  owner: (layer: string) => `lora:${layer}:owner`,
  /** Main pass: weight of each job LoRA on each image token [N, nL], and on its text tokens and temb [1, nL]. */
  img: 'lora_img',
  txt: 'lora_txt',
  /** Repaint pass: the same [Fr·N, nL] and [Fr, nL] (Fr = 0 without a repaint pass). */
  rpImg: 'lora_rp_img',
  rpTxt: 'lora_rp_txt',
  /** Regional streams: one row per stream [R, nL] (a regional stream carries its LoRAs on every token). */
  regional: 'lora_rg',
  /** The regional rows' weights, each image row taking its stream's row [T, nL]. */
  regionalImg: 'lora_rg_img',
} as const;

/**
 * Which weight table a linear's input rows take: image tokens, text tokens / temb, a single block's [txt; img], or
 * 'shared': the timestep and guidance embedders, whose one input row serves every regional stream at once.
 */
export type LoraTokens = 'img' | 'txt' | 'joint' | 'shared';

/**
 * A stream's weight tables (float32), each [rows, nL] with rows 1 broadcasting over tokens. `joint` is built
 * where a LoRA term needs it (inside its If), so a stream without LoRA never computes it.
 */
export interface LoraTables {
  img: Value;
  txt: Value;
  joint: () => Value;
  /**
   * For 'shared' layers; default `txt`. The regional streams take the global styles there: a per-stream weight
   * would broadcast their [1, D] output to [R, D], and the next MatMul would round differently from a plain step.
   */
  shared?: Value;
}

/** The adapter inputs of one layer. */
interface LayerInputs {
  down: Value;
  up: Value;
  owner: Value;
  /** bool [1]: the job has LoRA ranks on this layer. */
  on: Value;
}

/** The LoRA inputs of a step graph; `tables` of a stream give its weights. */
export interface LoraInputs {
  layers: Map<string, LayerInputs>;
  main: { img: Value; txt: Value };
  repaint: { img: Value; txt: Value };
  /** [R, nL], and the same per regional image row [T, nL] (for the linears that run on every stream at once). */
  regional: { rows: Value; img: Value };
}

/** A block context's LoRA: the layers and the weight tables of the stream it computes. */
export interface LoraScope {
  layers: Map<string, LayerInputs>;
  tables: LoraTables;
}

/**
 * The layers a LoRA can adapt: every linear of the transformer, by its diffusers name without `.weight`, with its
 * [out, in] shape. A graph and its feeds both take this list, so they always agree.
 */
export function loraLayers(weights: NamedWeights): Map<string, readonly [number, number]> {
  const out = new Map<string, readonly [number, number]>();
  for (const name of weights.names()) {
    if (!name.endsWith('.weight')) continue;
    const shape = weights.info(name).shape;
    if (shape.length === 2) out.set(name.slice(0, -'.weight'.length), [shape[0]!, shape[1]!] as const);
  }
  return out;
}

/** Declares the LoRA inputs (after the step's own inputs) and each layer's Rl > 0 flag, in the root graph. */
export function declareLoraInputs(g: Graph, layers: Map<string, readonly [number, number]>): LoraInputs {
  const io = 'float32';
  const main = { img: g.input(LORA_IO.img, io, ['N', 'nL']), txt: g.input(LORA_IO.txt, io, [1, 'nL']) };
  const repaint = { img: g.input(LORA_IO.rpImg, io, ['Nrp', 'nL']), txt: g.input(LORA_IO.rpTxt, io, ['Fr', 'nL']) };
  const regional = {
    rows: g.input(LORA_IO.regional, io, ['R', 'nL']),
    img: g.input(LORA_IO.regionalImg, io, ['T', 'nL']),
  };
  const inputs = new Map<string, LayerInputs>();
  for (const [name, [N, K]] of layers) {
    const rank = `r:${name}`;
    const down = g.input(LORA_IO.down(name), io, [rank, K]);
    const up = g.input(LORA_IO.up(name), io, [N, rank]);
    const owner = g.input(LORA_IO.owner(name), 'int64', [rank]);
    inputs.set(name, { down, up, owner, on: greater(shapeOf(owner, 0, 1), g.ints([0])) });
  }
  return { layers: inputs, main, repaint, regional };
}

/**
 * The tables of a full pass (main or repaint): image tokens, the text row, and [txt; img] for the single blocks
 * (the text row repeated over the L text tokens).
 */
export function fullTables(img: Value, txt: Value, textLength: Value): LoraTables {
  // In the compute type: the GPU providers' Expand takes only their 16-bit float.
  const joint = () => {
    const t = img.graph.computeType;
    return concat([expand(cast(txt, t), concat([textLength, shapeOf(txt, 1, 2)], 0)), cast(img, t)], 0);
  };
  return { img, txt, joint };
}

/** A regional stream's tables: its one row for every token. */
export function streamTables(row: Value): LoraTables {
  return { img: row, txt: row, joint: () => row };
}

/** Which table a layer's input rows take when the caller does not say (single blocks say it; see LoraTokens). */
export function defaultTokens(layer: string): LoraTokens {
  if (/^time_text_embed\.(timestep|guidance)_embedder\./.test(layer)) return 'shared';
  // Per-stream linears (modulation, the pooled-text embedder) and the text stream's linears take the text row.
  if (/(^|\.)(norm1|norm1_context|norm|norm_out)\.linear$|^time_text_embed\./.test(layer)) return 'txt';
  if (/\.(add_[qkv]_proj|to_add_out)$|\.ff_context\.|^context_embedder$/.test(layer)) return 'txt';
  if (layer.startsWith('single_transformer_blocks.')) return 'joint';
  return 'img';
}

/**
 * x · Wᵀ for a fed float32 W in the compute type. The transpose form transposes before the cast: WebGPU has no
 * float16 Transpose (a weight's Transpose is folded at load, a fed factor's is not).
 */
function product(x: Value, w: Value): Value {
  const t = x.graph.computeType;
  return x.graph.linearImpl === 'fused' ? linear(x, cast(w, t)) : matmul(x, cast(transpose(w, [1, 0]), t));
}

/** y (the plain linear output) plus the layer's LoRA term when the job has one on it. */
export function adapt(scope: LoraScope | undefined, layer: string, x: Value, y: Value, tokens?: LoraTokens): Value {
  const l = scope?.layers.get(layer);
  if (!scope || !l) return y;
  const g = x.graph;
  const kind = tokens ?? defaultTokens(layer);
  const { tables } = scope;
  const table =
    kind === 'joint' ? tables.joint : kind === 'shared' ? () => tables.shared ?? tables.txt : () => tables[kind];
  const [out] = ifElse(
    l.on,
    () =>
      g.scope(`lora/${layer}`, () => {
        const t = g.computeType;
        const weights = cast(gather(table(), l.owner, -1), t);
        const h = mul(product(x, l.down), weights);
        return [add(y, product(h, l.up))];
      }),
    () => [y],
  );
  return out!;
}
