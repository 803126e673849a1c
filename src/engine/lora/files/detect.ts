import { LoraFileError } from './errors.ts';
import { bflLayout } from './bfl.ts';
import { diffusersLayout } from './diffusers.ts';
import { kohyaLayout } from './kohya.ts';
import type { LoraLayout, ParsedKey } from './layout.ts';
import { xlabsLayout } from './xlabs.ts';

/**
 * Which layout a file is in, judged from its keys, and the files that are not FLUX transformer LoRAs at all.
 * A file is read in the one layout that understands most of its keys; keys of the others count as unrecognised.
 */

const LAYOUTS: readonly LoraLayout[] = [xlabsLayout, kohyaLayout, bflLayout, diffusersLayout];

/** Keys of a text encoder's LoRA (kohya `lora_te1_`, diffusers `text_encoder.`, ComfyUI `text_encoders.`). */
const TEXT_ENCODER = /^(lora_te\d*_|text_encoders?(_\d)?\.|te\d?\.)/;

export function isTextEncoderKey(key: string): boolean {
  return TEXT_ENCODER.test(key);
}

/** Stable Diffusion U-Net keys in kohya, SGM and diffusers spellings. */
const SD_UNET =
  /^(lora_unet_(down_blocks|up_blocks|mid_block|input_blocks|output_blocks|middle_block)_|unet\.|lora_unet_.*_attn[12]_)/;
const LYCORIS = /\.(hada_w[12]_[ab]|lokr_w[12](_[ab])?|oft_blocks|lokr_t2)$/;

export interface KeyInfo {
  shape(key: string): readonly number[];
  metadata: Record<string, string>;
}

/** Which Stable Diffusion a U-Net LoRA is for: SDXL's cross-attention keys take 2048 inputs, SD 1.x's 768. */
function sdVersion(keys: string[], info: KeyInfo): string {
  const arch = `${info.metadata['ss_base_model_version'] ?? ''} ${info.metadata['modelspec.architecture'] ?? ''}`;
  if (/sdxl|xl/i.test(arch)) return 'Stable Diffusion XL';
  const crossK = keys.find((k) => /attn2[._]to_k.*(lora_down|lora_A|lora\.down)/.test(k));
  const width = crossK ? info.shape(crossK)[1] : undefined;
  if (width === 2048) return 'Stable Diffusion XL';
  if (width === 1024) return 'Stable Diffusion 2.x';
  if (width === 768) return 'Stable Diffusion 1.5';
  if (keys.some((k) => k.startsWith('lora_te2_') || k.startsWith('text_encoder_2.'))) return 'Stable Diffusion XL';
  return 'Stable Diffusion XL / 1.5';
}

/** Throws for files that are plainly not FLUX transformer LoRAs, naming what they seem to be. */
export function refuseForeign(file: string, keys: string[], info: KeyInfo): void {
  const sd = keys.find((k) => SD_UNET.test(k));
  if (sd) {
    throw new LoraFileError(
      `${file} is a LoRA for ${sdVersion(keys, info)}, not FLUX (it has U-Net keys such as ${sd}); use a LoRA trained for FLUX.1`,
    );
  }
  const sd3 = keys.find((k) => k.startsWith('lora_unet_joint_blocks_') || k.includes('context_block.'));
  if (sd3) {
    throw new LoraFileError(
      `${file} is a LoRA for Stable Diffusion 3, not FLUX (it has keys such as ${sd3}); use a LoRA trained for FLUX.1`,
    );
  }
  const dora = keys.find((k) => k.endsWith('.dora_scale') || k.endsWith('.lora_magnitude_vector'));
  if (dora) {
    throw new LoraFileError(
      `${file} is a DoRA (it has ${dora}): its weight normalisation cannot be applied as an added low-rank term, so scenewright cannot use it; use a plain LoRA`,
    );
  }
}

/** LyCORIS files (LoHa, LoKr, OFT) have no down/up pairs; named in the "nothing maps" error. */
export function lycorisKey(keys: string[]): string | undefined {
  return keys.find((k) => LYCORIS.test(k));
}

export interface Classified {
  layout: LoraLayout;
  parsed: Map<string, ParsedKey>;
  textEncoder: string[];
  unrecognised: string[];
}

/** Sorts the keys into the chosen layout's, the text encoder's and the rest. */
export function classify(keys: string[]): Classified {
  const textEncoder = keys.filter(isTextEncoderKey);
  const rest = keys.filter((k) => !isTextEncoderKey(k));
  let best: { layout: LoraLayout; parsed: Map<string, ParsedKey> } | undefined;
  for (const layout of LAYOUTS) {
    const parsed = new Map<string, ParsedKey>();
    for (const k of rest) {
      const p = layout.parseKey(k);
      if (p) parsed.set(k, p);
    }
    if (!best || parsed.size > best.parsed.size) best = { layout, parsed };
  }
  const chosen = best!;
  return { ...chosen, textEncoder, unrecognised: rest.filter((k) => !chosen.parsed.has(k)) };
}
