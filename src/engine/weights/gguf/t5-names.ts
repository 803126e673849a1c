/**
 * T5 encoder tensor names in GGUF files made by llama.cpp's converter (city96's t5-v1_1-xxl-encoder-*.gguf) ↔
 * transformers' T5EncoderModel names (what checkpoint/component-specs.ts t5EncoderShapes expects). llama.cpp
 * maps both `wi` (T5) and `wi_1` (gated T5 v1.1) to ffn_up; `gated` picks which one ffn_up means.
 */

const BLOCK: Record<string, string> = {
  attn_q: 'layer.0.SelfAttention.q',
  attn_k: 'layer.0.SelfAttention.k',
  attn_v: 'layer.0.SelfAttention.v',
  attn_o: 'layer.0.SelfAttention.o',
  attn_rel_b: 'layer.0.SelfAttention.relative_attention_bias',
  attn_norm: 'layer.0.layer_norm',
  ffn_gate: 'layer.1.DenseReluDense.wi_0',
  ffn_up: 'layer.1.DenseReluDense.wi_1',
  ffn_down: 'layer.1.DenseReluDense.wo',
  ffn_norm: 'layer.1.layer_norm',
};
const BLOCK_INVERSE = new Map(Object.entries(BLOCK).map(([g, h]) => [h, g]));
BLOCK_INVERSE.set('layer.1.DenseReluDense.wi', 'ffn_up');

const GGUF_BLOCK = /^enc\.blk\.(\d+)\.([a-z_]+)\.weight$/;
const HF_BLOCK = /^encoder\.block\.(\d+)\.(layer\.[01]\.[A-Za-z_.0-9]+?)\.weight$/;

/** The transformers name of a llama.cpp T5 encoder tensor, or undefined (decoder tensors, unknown names). */
export function t5GgufName(ggufName: string, opts: { gated?: boolean } = {}): string | undefined {
  if (ggufName === 'token_embd.weight') return 'shared.weight';
  if (ggufName === 'enc.output_norm.weight') return 'encoder.final_layer_norm.weight';
  const m = GGUF_BLOCK.exec(ggufName);
  if (!m) return undefined;
  let hf = BLOCK[m[2]!];
  if (!hf) return undefined;
  if (m[2] === 'ffn_up' && opts.gated === false) hf = 'layer.1.DenseReluDense.wi';
  return `encoder.block.${m[1]}.${hf}.weight`;
}

/** The llama.cpp GGUF name of a transformers T5 encoder tensor (the writer's inverse), or undefined. */
export function t5HfToGgufName(hfName: string): string | undefined {
  if (hfName === 'shared.weight' || hfName === 'encoder.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'encoder.final_layer_norm.weight') return 'enc.output_norm.weight';
  const m = HF_BLOCK.exec(hfName);
  const g = m && BLOCK_INVERSE.get(m[2]!);
  return g ? `enc.blk.${m[1]}.${g}.weight` : undefined;
}
