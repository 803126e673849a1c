import { splitSuffix, stripPrefix, type LoraLayout } from './layout.ts';
import { isDiffusersLinear } from './names.ts';

/**
 * diffusers / PEFT: `transformer.transformer_blocks.0.attn.to_q.lora_A.weight` (PEFT's `base_model.model.` or no
 * prefix also occur), `.lora_B.weight`, optionally `.alpha`; names are the engine's own, so no fusion.
 */
const PREFIXES = ['transformer.', 'base_model.model.', ''];
const BODY =
  /^(transformer_blocks\.|single_transformer_blocks\.|x_embedder|context_embedder|time_text_embed\.|norm_out\.|proj_out)/;

export const diffusersLayout: LoraLayout = {
  format: 'diffusers',
  parseKey(key) {
    const s = splitSuffix(key);
    if (!s) return undefined;
    const name = stripPrefix(s.module, PREFIXES)!;
    if (!BODY.test(name)) return undefined;
    return { module: s.module, role: s.role, targets: isDiffusersLinear(name) ? { layers: [name] } : undefined };
  },
};
