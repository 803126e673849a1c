import { splitSuffix, stripPrefix, type LoraLayout } from './layout.ts';
import { bflTargets } from './names.ts';

/**
 * Black Forest Labs / ComfyUI: BFL module names under `diffusion_model.` (or bare), PEFT or kohya factor suffixes:
 * `diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight`. Fused modules split by output rows.
 */
const PREFIXES = ['model.diffusion_model.', 'diffusion_model.', ''];
const BODY = /^(double_blocks\.|single_blocks\.|img_in|txt_in|time_in\.|vector_in\.|guidance_in\.|final_layer\.)/;

export const bflLayout: LoraLayout = {
  format: 'bfl',
  parseKey(key) {
    const s = splitSuffix(key);
    if (!s) return undefined;
    const name = stripPrefix(s.module, PREFIXES)!;
    if (!BODY.test(name)) return undefined;
    return { module: s.module, role: s.role, targets: bflTargets(name) };
  },
};
