import { splitSuffix, type LoraLayout } from './layout.ts';
import { bflNameFromUnderscored, bflTargets, diffusersNameFromUnderscored } from './names.ts';

/**
 * kohya sd-scripts: `lora_unet_` + the BFL module name with dots as underscores
 * (`lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight`, `.lora_up.weight`, `.alpha`). Some trainers write
 * diffusers names the same way under `lora_transformer_`; LyCORIS's plain LoRAs use `lycoris_` for `lora_unet_`. A fused module (qkv, linear1) splits by output rows.
 */
export const kohyaLayout: LoraLayout = {
  format: 'kohya',
  parseKey(key) {
    const s = splitSuffix(key);
    if (!s) return undefined;
    const unet = ['lora_unet_', 'lycoris_'].find((p) => s.module.startsWith(p));
    if (unet) {
      const bfl = bflNameFromUnderscored(s.module.slice(unet.length));
      return { module: s.module, role: s.role, targets: bfl === undefined ? undefined : bflTargets(bfl) };
    }
    if (s.module.startsWith('lora_transformer_')) {
      const name = diffusersNameFromUnderscored(s.module.slice('lora_transformer_'.length));
      return { module: s.module, role: s.role, targets: name === undefined ? undefined : { layers: [name] } };
    }
    return undefined;
  },
};
