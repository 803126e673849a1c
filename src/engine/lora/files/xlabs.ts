import type { LoraLayout, ParsedKey } from './layout.ts';
import type { ModuleTargets } from './names.ts';

/**
 * XLabs (x-flux): attention-only LoRAs held by each block's processor,
 * `double_blocks.N.processor.qkv_lora1.down.weight` (lora1 = image stream, lora2 = text stream; qkv and proj) and
 * `single_blocks.N.processor.qkv_lora.down.weight` (q, k, v rows of linear1, not its MLP rows) and `proj_lora`
 * (linear2's input, attention and MLP together). No alpha: x-flux trains with alpha = rank.
 */
const KEY =
  /^(?:diffusion_model\.)?(double_blocks|single_blocks)\.(\d+)\.processor\.(qkv|proj)_lora([12]?)\.(down|up)\.weight$/;

function targets(kind: string, i: string, what: string, stream: string): ModuleTargets | undefined {
  if (kind === 'double_blocks') {
    const b = `transformer_blocks.${i}.attn`;
    if (stream === '1')
      return what === 'qkv' ? { layers: [`${b}.to_q`, `${b}.to_k`, `${b}.to_v`] } : { layers: [`${b}.to_out.0`] };
    if (stream === '2')
      return what === 'qkv'
        ? { layers: [`${b}.add_q_proj`, `${b}.add_k_proj`, `${b}.add_v_proj`] }
        : { layers: [`${b}.to_add_out`] };
    return undefined;
  }
  if (stream !== '') return undefined;
  const b = `single_transformer_blocks.${i}`;
  return what === 'qkv'
    ? { layers: [`${b}.attn.to_q`, `${b}.attn.to_k`, `${b}.attn.to_v`] }
    : { layers: [`${b}.proj_out`] };
}

export const xlabsLayout: LoraLayout = {
  format: 'xlabs',
  parseKey(key): ParsedKey | undefined {
    const m = KEY.exec(key);
    if (!m) return undefined;
    const [, kind, i, what, stream, role] = m as unknown as [string, string, string, string, string, 'down' | 'up'];
    return { module: key.slice(0, -`.${role}.weight`.length), role, targets: targets(kind, i, what, stream) };
  },
};
