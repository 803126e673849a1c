import type { ShapeSpec } from './check.ts';
import { CheckpointError } from './errors.ts';

/**
 * Expected tensor shapes of FLUX's other components (CLIPTextModel, T5EncoderModel, AutoencoderKL) from their
 * config.json, so that a config that disagrees with its weights is caught at load with the tensor named.
 * Keys and layouts as transformers / diffusers save them.
 */

type Json = Record<string, unknown>;

function num(cfg: Json, key: string, file: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
    throw new CheckpointError(`${file}: "${key}" must be a whole number (got ${JSON.stringify(cfg[key])})`);
  return v;
}

function nums(cfg: Json, key: string, file: string): number[] {
  const v = cfg[key];
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x > 0))
    throw new CheckpointError(`${file}: "${key}" must be a list of whole numbers (got ${JSON.stringify(v)})`);
  return v as number[];
}

function builder() {
  const shapes = new Map<string, number[]>();
  return {
    shapes,
    set: (name: string, shape: number[]) => shapes.set(name, shape),
    lin: (name: string, out: number, inp: number, bias = true) => {
      shapes.set(`${name}.weight`, [out, inp]);
      if (bias) shapes.set(`${name}.bias`, [out]);
    },
    norm: (name: string, c: number) => {
      shapes.set(`${name}.weight`, [c]);
      shapes.set(`${name}.bias`, [c]);
    },
    conv: (name: string, out: number, inp: number, k: number) => {
      shapes.set(`${name}.weight`, [out, inp, k, k]);
      shapes.set(`${name}.bias`, [out]);
    },
  };
}

/** transformers CLIPTextModel (FLUX's text_encoder). */
export function clipTextShapes(cfg: Json, file: string): ShapeSpec {
  const h = num(cfg, 'hidden_size', file);
  const inter = num(cfg, 'intermediate_size', file);
  const b = builder();
  b.set('text_model.embeddings.token_embedding.weight', [num(cfg, 'vocab_size', file), h]);
  b.set('text_model.embeddings.position_embedding.weight', [num(cfg, 'max_position_embeddings', file), h]);
  for (let i = 0; i < num(cfg, 'num_hidden_layers', file); i++) {
    const l = `text_model.encoder.layers.${i}`;
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) b.lin(`${l}.self_attn.${p}`, h, h);
    b.norm(`${l}.layer_norm1`, h);
    b.norm(`${l}.layer_norm2`, h);
    b.lin(`${l}.mlp.fc1`, inter, h);
    b.lin(`${l}.mlp.fc2`, h, inter);
  }
  b.norm('text_model.final_layer_norm', h);
  // Older transformers saved the position_ids buffer; it is not a weight.
  return { shapes: b.shapes, optional: (n) => n === 'text_model.embeddings.position_ids' };
}

/** transformers T5EncoderModel (FLUX's text_encoder_2, T5 v1.1 with gated GELU). */
export function t5EncoderShapes(cfg: Json, file: string): ShapeSpec {
  const d = num(cfg, 'd_model', file);
  const inner = num(cfg, 'num_heads', file) * num(cfg, 'd_kv', file);
  const ff = num(cfg, 'd_ff', file);
  const gated = cfg.is_gated_act === true || String(cfg.feed_forward_proj ?? '').startsWith('gated-');
  const b = builder();
  b.set('shared.weight', [num(cfg, 'vocab_size', file), d]);
  for (let i = 0; i < num(cfg, 'num_layers', file); i++) {
    const l = `encoder.block.${i}.layer`;
    for (const p of ['q', 'k', 'v']) b.lin(`${l}.0.SelfAttention.${p}`, inner, d, false);
    b.lin(`${l}.0.SelfAttention.o`, d, inner, false);
    if (i === 0)
      b.set(`${l}.0.SelfAttention.relative_attention_bias.weight`, [
        num(cfg, 'relative_attention_num_buckets', file),
        num(cfg, 'num_heads', file),
      ]);
    b.set(`${l}.0.layer_norm.weight`, [d]);
    if (gated) {
      b.lin(`${l}.1.DenseReluDense.wi_0`, ff, d, false);
      b.lin(`${l}.1.DenseReluDense.wi_1`, ff, d, false);
    } else {
      b.lin(`${l}.1.DenseReluDense.wi`, ff, d, false);
    }
    b.lin(`${l}.1.DenseReluDense.wo`, d, ff, false);
    b.set(`${l}.1.layer_norm.weight`, [d]);
  }
  b.set('encoder.final_layer_norm.weight', [d]);
  // encoder.embed_tokens is tied to shared.weight and usually not saved.
  return { shapes: b.shapes, optional: (n) => n === 'encoder.embed_tokens.weight' };
}

/** diffusers AutoencoderKL with Down/UpEncoderBlock2D (FLUX's vae). */
export function autoencoderKLShapes(cfg: Json, file: string): ShapeSpec {
  const ch = nums(cfg, 'block_out_channels', file);
  const layers = num(cfg, 'layers_per_block', file);
  const latent = num(cfg, 'latent_channels', file);
  const inC = num(cfg, 'in_channels', file, 3);
  const outC = num(cfg, 'out_channels', file, 3);
  const b = builder();
  const resnet = (name: string, cin: number, cout: number) => {
    b.norm(`${name}.norm1`, cin);
    b.conv(`${name}.conv1`, cout, cin, 3);
    b.norm(`${name}.norm2`, cout);
    b.conv(`${name}.conv2`, cout, cout, 3);
    if (cin !== cout) b.conv(`${name}.conv_shortcut`, cout, cin, 1);
  };
  const mid = (prefix: string, c: number) => {
    resnet(`${prefix}.mid_block.resnets.0`, c, c);
    resnet(`${prefix}.mid_block.resnets.1`, c, c);
    if (cfg.mid_block_add_attention !== false) {
      const a = `${prefix}.mid_block.attentions.0`;
      b.norm(`${a}.group_norm`, c);
      for (const p of ['to_q', 'to_k', 'to_v', 'to_out.0']) b.lin(`${a}.${p}`, c, c);
    }
  };
  const last = ch[ch.length - 1]!;
  // Encoder
  b.conv('encoder.conv_in', ch[0]!, inC, 3);
  let out = ch[0]!;
  ch.forEach((c, i) => {
    const cin = out;
    out = c;
    for (let j = 0; j < layers; j++) resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? cin : out, out);
    if (i < ch.length - 1) b.conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, out, out, 3);
  });
  mid('encoder', last);
  b.norm('encoder.conv_norm_out', last);
  b.conv('encoder.conv_out', 2 * latent, last, 3);
  if (cfg.use_quant_conv !== false) b.conv('quant_conv', 2 * latent, 2 * latent, 1);
  // Decoder
  if (cfg.use_post_quant_conv !== false) b.conv('post_quant_conv', latent, latent, 1);
  b.conv('decoder.conv_in', last, latent, 3);
  mid('decoder', last);
  const rev = [...ch].reverse();
  out = rev[0]!;
  rev.forEach((c, i) => {
    const cin = out;
    out = c;
    for (let j = 0; j <= layers; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? cin : out, out);
    if (i < rev.length - 1) b.conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, out, out, 3);
  });
  b.norm('decoder.conv_norm_out', ch[0]!);
  b.conv('decoder.conv_out', outC, ch[0]!, 3);
  return { shapes: b.shapes };
}
