/**
 * FLUX.1's linear layers under Black Forest Labs' module names (what kohya, ComfyUI and XLabs files are keyed by)
 * and the engine's diffusers names they become. BFL fuses some layers diffusers keeps apart: a double block's
 * qkv is [q; k; v] rows, a single block's linear1 is [q; k; v; mlp] rows, so one BFL module can feed several
 * engine layers, each taking its block of output rows in the order listed.
 */

/** The engine layers one file module feeds, in row order; `swapHalves` when the two output halves trade places. */
export interface ModuleTargets {
  layers: string[];
  /**
   * BFL's final adaLN linear outputs (shift, scale); diffusers' norm_out.linear outputs (scale, shift). A LoRA's
   * up rows are swapped the same way so the product lands on the same outputs.
   */
  swapHalves?: boolean;
}

const DOUBLE: Record<string, string[]> = {
  'img_attn.qkv': ['attn.to_q', 'attn.to_k', 'attn.to_v'],
  'txt_attn.qkv': ['attn.add_q_proj', 'attn.add_k_proj', 'attn.add_v_proj'],
  'img_attn.proj': ['attn.to_out.0'],
  'txt_attn.proj': ['attn.to_add_out'],
  'img_mlp.0': ['ff.net.0.proj'],
  'img_mlp.2': ['ff.net.2'],
  'txt_mlp.0': ['ff_context.net.0.proj'],
  'txt_mlp.2': ['ff_context.net.2'],
  'img_mod.lin': ['norm1.linear'],
  'txt_mod.lin': ['norm1_context.linear'],
};

const SINGLE: Record<string, string[]> = {
  linear1: ['attn.to_q', 'attn.to_k', 'attn.to_v', 'proj_mlp'],
  // Some trainers adapt only linear1's q, k, v rows (ComfyUI reads these as `linear1_qkv`).
  linear1_qkv: ['attn.to_q', 'attn.to_k', 'attn.to_v'],
  linear2: ['proj_out'],
  'modulation.lin': ['norm.linear'],
};

const TOP: Record<string, ModuleTargets> = {
  img_in: { layers: ['x_embedder'] },
  txt_in: { layers: ['context_embedder'] },
  'time_in.in_layer': { layers: ['time_text_embed.timestep_embedder.linear_1'] },
  'time_in.out_layer': { layers: ['time_text_embed.timestep_embedder.linear_2'] },
  'vector_in.in_layer': { layers: ['time_text_embed.text_embedder.linear_1'] },
  'vector_in.out_layer': { layers: ['time_text_embed.text_embedder.linear_2'] },
  'guidance_in.in_layer': { layers: ['time_text_embed.guidance_embedder.linear_1'] },
  'guidance_in.out_layer': { layers: ['time_text_embed.guidance_embedder.linear_2'] },
  'final_layer.linear': { layers: ['proj_out'] },
  'final_layer.adaLN_modulation.1': { layers: ['norm_out.linear'], swapHalves: true },
};

const BLOCK = /^(double_blocks|single_blocks)\.(\d+)\.(.+)$/;

/** Engine layers of a BFL module name such as `double_blocks.3.img_attn.qkv`; undefined if it is not a linear. */
export function bflTargets(name: string): ModuleTargets | undefined {
  const m = BLOCK.exec(name);
  if (!m) return TOP[name];
  const [, kind, i, rest] = m as unknown as [string, string, string, string];
  const table = kind === 'double_blocks' ? DOUBLE : SINGLE;
  const parts = Object.hasOwn(table, rest) ? table[rest] : undefined;
  if (!parts) return undefined;
  const block = kind === 'double_blocks' ? `transformer_blocks.${i}` : `single_transformer_blocks.${i}`;
  return { layers: parts.map((p) => `${block}.${p}`) };
}

/** The BFL module names of a kohya module name (dots turned into underscores), e.g. `img_attn_qkv` → `img_attn.qkv`. */
const underscored = (table: Record<string, unknown>) =>
  new Map(Object.keys(table).map((k) => [k.replace(/\./g, '_'), k]));
const DOUBLE_US = underscored(DOUBLE);
const SINGLE_US = underscored(SINGLE);
const TOP_US = underscored(TOP);
const BLOCK_US = /^(double_blocks|single_blocks)_(\d+)_(.+)$/;

/** `double_blocks_3_img_attn_qkv` → `double_blocks.3.img_attn.qkv` (kohya writes BFL names with underscores). */
export function bflNameFromUnderscored(name: string): string | undefined {
  const m = BLOCK_US.exec(name);
  if (!m) return TOP_US.get(name);
  const [, kind, i, rest] = m as unknown as [string, string, string, string];
  const dotted = (kind === 'double_blocks' ? DOUBLE_US : SINGLE_US).get(rest);
  return dotted === undefined ? undefined : `${kind}.${i}.${dotted}`;
}

/** Every engine (diffusers) linear's name relative to its block, and the top-level ones, for underscored lookups. */
const DIFFUSERS_DOUBLE = new Set([...Object.values(DOUBLE).flat()]);
const DIFFUSERS_SINGLE = new Set([...Object.values(SINGLE).flat()]);
const DIFFUSERS_TOP = new Set(Object.values(TOP).flatMap((t) => t.layers));
const DIFFUSERS_DOUBLE_US = new Map([...DIFFUSERS_DOUBLE].map((k) => [k.replace(/\./g, '_'), k]));
const DIFFUSERS_SINGLE_US = new Map([...DIFFUSERS_SINGLE].map((k) => [k.replace(/\./g, '_'), k]));
const DIFFUSERS_TOP_US = new Map([...DIFFUSERS_TOP].map((k) => [k.replace(/\./g, '_'), k]));
const DIFFUSERS_BLOCK_US = /^(transformer_blocks|single_transformer_blocks)_(\d+)_(.+)$/;
const DIFFUSERS_BLOCK = /^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)$/;

/** `transformer_blocks_3_attn_to_q` → `transformer_blocks.3.attn.to_q` (some trainers write diffusers names so). */
export function diffusersNameFromUnderscored(name: string): string | undefined {
  const m = DIFFUSERS_BLOCK_US.exec(name);
  if (!m) return DIFFUSERS_TOP_US.get(name);
  const [, kind, i, rest] = m as unknown as [string, string, string, string];
  const dotted = (kind === 'transformer_blocks' ? DIFFUSERS_DOUBLE_US : DIFFUSERS_SINGLE_US).get(rest);
  return dotted === undefined ? undefined : `${kind}.${i}.${dotted}`;
}

/** True if `name` is one of the FLUX transformer's linears under its diffusers name. */
export function isDiffusersLinear(name: string): boolean {
  const m = DIFFUSERS_BLOCK.exec(name);
  if (!m) return DIFFUSERS_TOP.has(name);
  return (m[1] === 'transformer_blocks' ? DIFFUSERS_DOUBLE : DIFFUSERS_SINGLE).has(m[3]!);
}
