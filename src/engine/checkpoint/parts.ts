import type { TensorFile } from '../weights/tensor-file.ts';
import { isBflTransformer } from './bfl.ts';
import { isBflVae } from './bfl-vae.ts';
import { CheckpointError } from './errors.ts';
import { PrefixView } from './files.ts';
import { isClipText, isT5Encoder } from './text-encoders.ts';
import type { ComponentName } from './types.ts';

/** A pipeline part whose weights a model set must find: the transformer or one of the other components. */
export type Role = 'transformer' | ComponentName;
export const ROLES: Role[] = ['transformer', 'text_encoder', 'text_encoder_2', 'vae'];

/** Which key names a part's tensors use. */
export type Keys = 'diffusers' | 'bfl' | 'transformers';

/** One part found in a weights file: the tensors (a view, for all-in-one files) and their naming. */
export interface Part {
  role: Role;
  file: TensorFile;
  keys: Keys;
  /** The prefix inside a ComfyUI all-in-one checkpoint, if the part came from one. */
  prefix?: string;
}

/** What each role is in messages. */
export const ROLE_NAMES: Record<Role, string> = {
  transformer: 'FLUX.1 transformer',
  text_encoder: 'CLIP text encoder',
  text_encoder_2: 'T5 encoder',
  vae: 'autoencoder (VAE)',
};

/**
 * Prefixes of ComfyUI's all-in-one FLUX checkpoints (ComfyUI supported_models.Flux: unet `model.diffusion_model.`,
 * VAE `vae.` (`first_stage_model.` in older SD-style saves), text encoders `text_encoders.<name>.transformer.`).
 */
const COMFY_PREFIXES: [Role, string][] = [
  ['transformer', 'model.diffusion_model.'],
  ['vae', 'vae.'],
  ['vae', 'first_stage_model.'],
  ['text_encoder', 'text_encoders.clip_l.transformer.'],
  ['text_encoder_2', 'text_encoders.t5xxl.transformer.'],
];
/** Tensors of an all-in-one file outside the parts that FLUX inference does not use. */
const COMFY_UNUSED = /^text_encoders\.\w+\.logit_scale$/;

function single(file: TensorFile): Part | undefined {
  if (isBflTransformer(file)) return { role: 'transformer', file, keys: 'bfl' };
  if (file.has('x_embedder.weight') && file.has('transformer_blocks.0.attn.to_q.weight'))
    return { role: 'transformer', file, keys: 'diffusers' };
  if (isBflVae(file)) return { role: 'vae', file, keys: 'bfl' };
  if (file.has('decoder.conv_in.weight') && file.names().some((n) => n.startsWith('decoder.up_blocks.')))
    return { role: 'vae', file, keys: 'diffusers' };
  if (isClipText(file)) return { role: 'text_encoder', file, keys: 'transformers' };
  if (isT5Encoder(file)) return { role: 'text_encoder_2', file, keys: 'transformers' };
  return undefined;
}

/**
 * The parts a weights file holds, recognised by its tensor names (not its file name): one part for a
 * component file, several for a ComfyUI all-in-one checkpoint, none for a file that is no FLUX.1 part (a LoRA).
 */
export function partsOf(file: TensorFile): Part[] {
  const names = file.names();
  const prefixes = COMFY_PREFIXES.filter(([, p]) => names.some((n) => n.startsWith(p)));
  if (prefixes.length === 0) {
    const p = single(file);
    return p ? [p] : [];
  }
  const parts: Part[] = [];
  for (const [role, prefix] of prefixes) {
    const view = new PrefixView(file, prefix);
    const p = single(view);
    if (!p || p.role !== role)
      throw new CheckpointError(
        `${file.label}: the tensors under ${prefix} are not a ${ROLE_NAMES[role]} in the key names ComfyUI saves (is this a FLUX.1 checkpoint?)`,
      );
    if (parts.some((q) => q.role === role))
      throw new CheckpointError(
        `${file.label}: holds two ${ROLE_NAMES[role]}s (${parts.find((q) => q.role === role)!.prefix}* and ${prefix}*)`,
      );
    parts.push({ ...p, prefix });
  }
  const outside = names.filter((n) => !prefixes.some(([, p]) => n.startsWith(p)) && !COMFY_UNUSED.test(n));
  if (outside.length > 0) {
    const more = outside.length > 3 ? ` and ${outside.length - 3} more` : '';
    throw new CheckpointError(
      `${file.label}: tensors ${outside.slice(0, 3).join(', ')}${more} belong to no part of a FLUX.1 all-in-one checkpoint (another architecture?)`,
    );
  }
  return parts;
}
