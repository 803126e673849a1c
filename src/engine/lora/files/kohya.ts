import { splitSuffix, type LoraLayout, type ParsedKey } from './layout.ts';
import { bflNameFromUnderscored, bflTargets, diffusersNameFromUnderscored, type ModuleTargets } from './names.ts';

/**
 * kohya sd-scripts: `lora_unet_` + the BFL module name with dots as underscores
 * (`lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight`, `.lora_up.weight`, `.alpha`); a fused module (qkv,
 * linear1) splits by output rows. OneTrainer (`lora_transformer_`) and SimpleTuner's LyCORIS LoRAs (`lycoris_`)
 * write diffusers names the same way.
 */
function underscoredTargets(name: string, bflFirst: boolean): ModuleTargets | undefined {
  const bfl = () => {
    const n = bflNameFromUnderscored(name);
    return n === undefined ? undefined : bflTargets(n);
  };
  const diffusers = () => {
    const n = diffusersNameFromUnderscored(name);
    return n === undefined ? undefined : { layers: [n] };
  };
  return bflFirst ? (bfl() ?? diffusers()) : (diffusers() ?? bfl());
}

const PREFIXES: readonly [string, boolean][] = [
  ['lora_unet_', true],
  ['lora_transformer_', false],
  ['lycoris_', false],
];

export const kohyaLayout: LoraLayout = {
  format: 'kohya',
  parseKey(key): ParsedKey | undefined {
    const s = splitSuffix(key);
    if (!s) return undefined;
    const prefix = PREFIXES.find(([p]) => s.module.startsWith(p));
    if (!prefix) return undefined;
    return { module: s.module, role: s.role, targets: underscoredTargets(s.module.slice(prefix[0].length), prefix[1]) };
  },
};
