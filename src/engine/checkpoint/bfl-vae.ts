import type { TensorSource } from '../onnx/graph.ts';
import type { TensorFile } from '../weights/tensor-file.ts';
import { MappedWeights } from './bfl.ts';
import { CheckpointError } from './errors.ts';
import type { Json } from './types.ts';

/**
 * Black Forest Labs' `ae.safetensors` (the LDM AutoencoderKL key names that BFL's flux repo and ComfyUI use)
 * under diffusers AutoencoderKL names, and its diffusers config derived from the tensor shapes.
 * Differences handled: `down.{i}.block.{j}` ↔ `down_blocks.{i}.resnets.{j}`; the decoder's `up.{i}` counts from
 * the lowest resolution's opposite end (diffusers `up_blocks[n−1−i]`); `nin_shortcut` ↔ `conv_shortcut`; the mid
 * attention's q/k/v/proj_out are 1×1 convs `[C,C,1,1]` where diffusers has linears `[C,C]` (same bytes).
 */

/** True if the file holds BFL/LDM autoencoder keys. */
export function isBflVae(file: TensorFile): boolean {
  return (
    file.has('decoder.conv_in.weight') &&
    file.has('encoder.conv_in.weight') &&
    file.names().some((n) => n.startsWith('decoder.up.'))
  );
}

function indices(file: TensorFile, prefix: string): number {
  const ids = new Set<number>();
  for (const n of file.names()) {
    const m = n.startsWith(prefix) ? /^(\d+)\./.exec(n.slice(prefix.length)) : null;
    if (m) ids.add(Number(m[1]));
  }
  for (let i = 0; i < ids.size; i++)
    if (!ids.has(i))
      throw new CheckpointError(`${file.label}: ${prefix}${i}.* is missing (incomplete autoencoder file)`);
  return ids.size;
}

function shape(file: TensorFile, name: string): number[] {
  if (!file.has(name))
    throw new CheckpointError(
      `${file.label}: tensor ${name} is missing (not a complete FLUX.1 autoencoder file such as ae.safetensors)`,
    );
  return file.info(name).shape;
}

/** FLUX.1's latent scaling (BFL AutoEncoderParams scale_factor / shift_factor), used when no params.json says otherwise. */
export const FLUX_AE_SCALING = { scale: 0.3611, shift: 0.1159 };

/**
 * The diffusers AutoencoderKL config.json these weights imply. Scaling and shift are not in the weights: they come
 * from params.json's "ae" section when given, else FLUX.1's values, which only a 16-channel latent can mean.
 */
export function bflVaeConfig(file: TensorFile, params?: Json): Json {
  const levels = indices(file, 'encoder.down.');
  const blockOut = Array.from({ length: levels }, (_, i) => shape(file, `encoder.down.${i}.block.0.conv1.weight`)[0]!);
  const latent = shape(file, 'decoder.conv_in.weight')[1]!;
  const ae = params?.ae as Json | undefined;
  const scale = typeof ae?.scale_factor === 'number' ? ae.scale_factor : undefined;
  const shift = typeof ae?.shift_factor === 'number' ? ae.shift_factor : undefined;
  if ((scale === undefined || shift === undefined) && latent !== 16) {
    throw new CheckpointError(
      `${file.label}: a ${latent}-channel autoencoder is not FLUX.1's (16 channels), so its latent scaling is unknown; use FLUX.1's ae.safetensors`,
    );
  }
  return {
    _class_name: 'AutoencoderKL',
    in_channels: shape(file, 'encoder.conv_in.weight')[1]!,
    out_channels: shape(file, 'decoder.conv_out.weight')[0]!,
    latent_channels: latent,
    block_out_channels: blockOut,
    layers_per_block: indices(file, 'encoder.down.0.block.'),
    down_block_types: blockOut.map(() => 'DownEncoderBlock2D'),
    up_block_types: blockOut.map(() => 'UpDecoderBlock2D'),
    act_fn: 'silu',
    // BFL's AutoEncoder hard-codes GroupNorm(32, C) (flux/modules/autoencoder.py).
    norm_num_groups: 32,
    mid_block_add_attention: file.has('encoder.mid.attn_1.q.weight'),
    use_quant_conv: file.has('quant_conv.weight'),
    use_post_quant_conv: file.has('post_quant_conv.weight'),
    scaling_factor: scale ?? FLUX_AE_SCALING.scale,
    shift_factor: shift ?? FLUX_AE_SCALING.shift,
  };
}

const RESNET = {
  norm1: 'norm1',
  conv1: 'conv1',
  norm2: 'norm2',
  conv2: 'conv2',
  nin_shortcut: 'conv_shortcut',
} as Record<string, string>;
const ATTN = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' } as Record<string, string>;

/** The diffusers name of one BFL autoencoder key, or undefined if the key is not part of an AutoencoderKL. */
export function diffusersVaeName(key: string, levels: number): string | undefined {
  if (
    /^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/.test(key) ||
    /^(post_quant_conv|quant_conv)\.(weight|bias)$/.test(key)
  )
    return key;
  let m: RegExpExecArray | null;
  if ((m = /^(encoder|decoder)\.norm_out\.(weight|bias)$/.exec(key))) return `${m[1]}.conv_norm_out.${m[2]}`;
  if ((m = /^(encoder|decoder)\.mid\.block_([12])\.(\w+)\.(weight|bias)$/.exec(key))) {
    const p = RESNET[m[3]!];
    return p && `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${p}.${m[4]}`;
  }
  if ((m = /^(encoder|decoder)\.mid\.attn_1\.(\w+)\.(weight|bias)$/.exec(key))) {
    const p = ATTN[m[2]!];
    return p && `${m[1]}.mid_block.attentions.0.${p}.${m[3]}`;
  }
  if ((m = /^encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)$/.exec(key))) {
    const p = RESNET[m[3]!];
    return p && `encoder.down_blocks.${m[1]}.resnets.${m[2]}.${p}.${m[4]}`;
  }
  if ((m = /^encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)$/.exec(key)))
    return `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`;
  if ((m = /^decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)$/.exec(key))) {
    const p = RESNET[m[3]!];
    return p && `decoder.up_blocks.${levels - 1 - Number(m[1])}.resnets.${m[2]}.${p}.${m[4]}`;
  }
  if ((m = /^decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$/.exec(key)))
    return `decoder.up_blocks.${levels - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`;
  return undefined;
}

/** BFL autoencoder keys → diffusers names (no bytes copied). Keys that are not part of an AutoencoderKL are an error. */
export function mapBflVae(file: TensorFile): MappedWeights {
  const levels = indices(file, 'encoder.down.');
  const out = new Map<string, { src: TensorSource; file: string }>();
  const unknown: string[] = [];
  for (const key of file.names()) {
    const name = diffusersVaeName(key, levels);
    if (!name) {
      unknown.push(key);
      continue;
    }
    let src = file.source(key);
    // The attention projections are 1×1 convolutions in BFL's file and linears in diffusers: same bytes, row-major.
    if (name.includes('.attentions.0.to_') && name.endsWith('.weight')) {
      const [o, i, kh, kw] = src.shape;
      if (src.shape.length !== 4 || kh !== 1 || kw !== 1)
        throw new CheckpointError(
          `${file.label}: tensor ${key} has shape [${src.shape.join(',')}], expected a 1×1 convolution [C,C,1,1]`,
        );
      src = { ...src, shape: [o!, i!] };
    }
    out.set(name, { src, file: file.label });
  }
  if (unknown.length > 0) {
    const more = unknown.length > 3 ? ` and ${unknown.length - 3} more` : '';
    throw new CheckpointError(
      `${file.label}: tensors ${unknown.slice(0, 3).join(', ')}${more} are not part of a FLUX.1 autoencoder (an encoder/decoder AutoencoderKL in BFL's ae.safetensors naming)`,
    );
  }
  return new MappedWeights(file.label, out);
}
