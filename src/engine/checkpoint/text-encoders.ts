import type { TensorSource } from '../onnx/graph.ts';
import type { TensorFile } from '../weights/tensor-file.ts';
import { MappedWeights } from './bfl.ts';
import { CheckpointError } from './errors.ts';
import type { Json } from './types.ts';

/**
 * Single-file text encoders as ComfyUI users have them (clip_l.safetensors, t5xxl_fp16 / t5xxl_fp8_e4m3fn
 * (_scaled).safetensors): transformers' own key names, but no config.json. The config is then FLUX.1's, with
 * every size that the tensors show taken from the tensors.
 */

export function isClipText(file: TensorFile): boolean {
  return file.has('text_model.embeddings.token_embedding.weight');
}

export function isT5Encoder(file: TensorFile): boolean {
  return file.has('encoder.block.0.layer.0.SelfAttention.q.weight');
}

/** Tensors some CLIP files carry that CLIPTextModel (FLUX's pooled output) does not use. */
const CLIP_UNUSED = new Set(['text_projection.weight', 'logit_scale']);

function blocks(file: TensorFile, prefix: string): number {
  const ids = new Set<number>();
  for (const n of file.names()) {
    const m = n.startsWith(prefix) ? /^(\d+)\./.exec(n.slice(prefix.length)) : null;
    if (m) ids.add(Number(m[1]));
  }
  return ids.size;
}

function dims(file: TensorFile, name: string): number[] {
  if (!file.has(name))
    throw new CheckpointError(`${file.label}: tensor ${name} is missing (incomplete text encoder file)`);
  return file.info(name).shape;
}

/** CLIP-L's head size: the one size the tensors do not show. */
const CLIP_HEAD = 64;

/** FLUX.1's text_encoder/config.json with the sizes of this file. */
export function clipConfigFromShapes(file: TensorFile): Json {
  const [vocab, hidden] = dims(file, 'text_model.embeddings.token_embedding.weight') as [number, number];
  if (hidden % CLIP_HEAD !== 0) {
    throw new CheckpointError(
      `${file.label}: hidden size ${hidden} is not a multiple of CLIP-L's head size ${CLIP_HEAD}, so the head count is unknown; put the file in a text_encoder/ folder with its config.json`,
    );
  }
  return {
    architectures: ['CLIPTextModel'],
    model_type: 'clip_text_model',
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: dims(file, 'text_model.encoder.layers.0.mlp.fc1.weight')[0],
    num_hidden_layers: blocks(file, 'text_model.encoder.layers.'),
    num_attention_heads: hidden / CLIP_HEAD,
    max_position_embeddings: dims(file, 'text_model.embeddings.position_embedding.weight')[0],
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  };
}

/** FLUX.1's text_encoder_2/config.json (T5 v1.1 XXL) with the sizes of this file. */
export function t5ConfigFromShapes(file: TensorFile): Json {
  const emb = file.has('shared.weight') ? 'shared.weight' : 'encoder.embed_tokens.weight';
  const [vocab, dModel] = dims(file, emb) as [number, number];
  const [buckets, heads] = dims(file, 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight') as [
    number,
    number,
  ];
  const inner = dims(file, 'encoder.block.0.layer.0.SelfAttention.q.weight')[0]!;
  const gated = file.has('encoder.block.0.layer.1.DenseReluDense.wi_0.weight');
  return {
    architectures: ['T5EncoderModel'],
    model_type: 't5',
    vocab_size: vocab,
    d_model: dModel,
    num_heads: heads,
    d_kv: inner / heads,
    d_ff: dims(file, `encoder.block.0.layer.1.DenseReluDense.${gated ? 'wi_0' : 'wi'}.weight`)[0],
    num_layers: blocks(file, 'encoder.block.'),
    relative_attention_num_buckets: buckets,
    relative_attention_max_distance: 128,
    feed_forward_proj: gated ? 'gated-gelu' : 'relu',
    is_gated_act: gated,
    dense_act_fn: gated ? 'gelu_new' : 'relu',
    layer_norm_epsilon: 1e-6,
  };
}

/** The file's CLIP tensors, without the projection head CLIPTextModel does not have. */
export function clipWeights(file: TensorFile): MappedWeights {
  const out = new Map<string, { src: TensorSource; file: string }>();
  for (const n of file.names()) if (!CLIP_UNUSED.has(n)) out.set(n, { src: file.source(n), file: file.label });
  return new MappedWeights(file.label, out);
}

/** The file's T5 tensors; a file that keeps only the tied copy (encoder.embed_tokens) gives it as shared.weight. */
export function t5Weights(file: TensorFile): MappedWeights {
  const out = new Map<string, { src: TensorSource; file: string }>();
  for (const n of file.names()) out.set(n, { src: file.source(n), file: file.label });
  if (!out.has('shared.weight') && out.has('encoder.embed_tokens.weight')) {
    out.set('shared.weight', out.get('encoder.embed_tokens.weight')!);
    out.delete('encoder.embed_tokens.weight');
  }
  return new MappedWeights(file.label, out);
}
