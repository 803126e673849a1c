// LoRA files for tests, as kohya's sd-scripts writes them for FLUX (lora_unet_double_blocks_N_img_attn_qkv with
// lora_down / lora_up / alpha, ss_* metadata), sized for the tiny checkpoint (hidden 32, two double blocks).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeSafetensors, type HostTensor } from '../../src/engine/weights/safetensors.ts';

export interface StyleFileOptions {
  /** ss_tag_frequency: trigger words by count. */
  tags?: Record<string, number>;
  baseModel?: string;
  rank?: number;
  /** Changes every weight: two files with different seeds differ (and hash differently). */
  seed?: number;
}

function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = (x / 2 ** 32 - 0.5) * 0.02;
  }
  return out;
}

function f32(shape: number[], seed: number): HostTensor {
  return {
    dtype: 'float32',
    shape,
    data: values(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
  };
}

/** Writes `<dir>/<name>.safetensors` and returns its path. */
export function writeStyleFile(dir: string, name: string, o: StyleFileOptions = {}): string {
  mkdirSync(dir, { recursive: true });
  const rank = o.rank ?? 4;
  const seed = o.seed ?? 1;
  const hidden = 32;
  const tensors: Record<string, HostTensor> = {};
  for (const [layer, out] of [
    ['lora_unet_double_blocks_0_img_attn_qkv', 3 * hidden],
    ['lora_unet_double_blocks_0_img_attn_proj', hidden],
  ] as const) {
    tensors[`${layer}.lora_down.weight`] = f32([rank, hidden], seed);
    tensors[`${layer}.lora_up.weight`] = f32([out, rank], seed + 7);
    tensors[`${layer}.alpha`] = { dtype: 'float32', shape: [], data: new Float32Array([rank]) };
  }
  const metadata: Record<string, string> = { ss_network_module: 'networks.lora_flux', ss_output_name: name };
  if (o.tags) metadata.ss_tag_frequency = JSON.stringify({ '1_dataset': o.tags });
  if (o.baseModel) metadata.ss_base_model_version = o.baseModel;
  const file = path.join(dir, `${name}.safetensors`);
  writeSafetensors(file, tensors, metadata);
  return file;
}
