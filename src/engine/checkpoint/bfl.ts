import type { TensorSource } from '../onnx/graph.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import type { TensorFile } from '../weights/tensor-file.ts';
import { concatRows, sliceRows, sourceToFloat32 } from '../weights/tensor-source.ts';
import { CheckpointError } from './errors.ts';
import { validateRope, type FluxTransformerConfig } from './flux-config.ts';

/**
 * Black Forest Labs' single-file layout (flux1-dev.safetensors / flux1-schnell.safetensors, as ComfyUI users
 * have it), exposed under diffusers names so graphs do not care about the layout. The mapping is the inverse
 * of what diffusers' converter does, done without copying: fused q|k|v(|mlp) rows are split into byte ranges
 * of the same file, and the final (shift, scale) modulation is re-joined as diffusers' (scale, shift).
 */

/** Named weights whose sources are computed (slices / concatenations of tensors in other files). */
export class MappedWeights implements NamedWeights {
  constructor(
    readonly label: string,
    private readonly entries: Map<string, { src: TensorSource; file: string }>,
  ) {}
  names(): string[] {
    return [...this.entries.keys()];
  }
  has(name: string): boolean {
    return this.entries.has(name);
  }
  private entry(name: string) {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(`${this.label}: no tensor maps to ${name}`);
    return e;
  }
  info(name: string) {
    const { src, file } = this.entry(name);
    return { dtype: src.dtype, shape: src.shape, file };
  }
  source(name: string): TensorSource {
    return this.entry(name).src;
  }
  readFloat32(name: string): Float32Array {
    return sourceToFloat32(this.entry(name).src);
  }
}

/** True if the file holds BFL transformer keys. */
export function isBflTransformer(file: TensorFile): boolean {
  return file.has('img_in.weight') && file.has('double_blocks.0.img_attn.qkv.weight');
}

export function countBlocks(file: TensorFile, prefix: string): number {
  const ids = new Set<number>();
  for (const n of file.names()) {
    const m = n.startsWith(prefix) ? /^(\d+)\./.exec(n.slice(prefix.length)) : null;
    if (m) ids.add(Number(m[1]));
  }
  return ids.size;
}

/** FluxTransformerConfig from tensor shapes; RoPE axes (not visible in weights) from params.json or FLUX.1's (16,56,56). */
export function bflConfig(file: TensorFile, params: Record<string, unknown> | undefined): FluxTransformerConfig {
  const dim = (name: string, i: number) => {
    if (!file.has(name))
      throw new CheckpointError(`${file.label}: tensor ${name} is missing (not a complete FLUX.1 transformer file)`);
    return file.info(name).shape[i]!;
  };
  const inner = dim('img_in.weight', 0);
  const headDim = dim('double_blocks.0.img_attn.norm.query_norm.scale', 0);
  const flux = (params?.flux ?? params) as Record<string, unknown> | undefined;
  let axes = flux?.axes_dim as number[] | undefined;
  if (!axes) {
    if (headDim !== 128)
      throw new CheckpointError(
        `${file.label}: head size ${headDim} is not FLUX.1's 128, so the RoPE axes are unknown; put a params.json with {"flux": {"axes_dim": [...]}} beside it`,
      );
    axes = [16, 56, 56];
  }
  const cfg: FluxTransformerConfig = {
    inChannels: dim('img_in.weight', 1),
    outChannels: dim('final_layer.linear.weight', 0),
    numLayers: countBlocks(file, 'double_blocks.'),
    numSingleLayers: countBlocks(file, 'single_blocks.'),
    heads: inner / headDim,
    headDim,
    inner,
    mlp: dim('double_blocks.0.img_mlp.0.weight', 0),
    jointAttentionDim: dim('txt_in.weight', 1),
    pooledProjectionDim: dim('vector_in.in_layer.weight', 1),
    guidanceEmbeds: file.has('guidance_in.in_layer.weight'),
    axesDimsRope: axes,
    ropeTheta: typeof flux?.theta === 'number' ? flux.theta : 10000,
  };
  if (!Number.isInteger(cfg.heads))
    throw new CheckpointError(`${file.label}: hidden size ${inner} is not a multiple of the head size ${headDim}`);
  validateRope(cfg, file.label);
  return cfg;
}

/** BFL key → diffusers key(s). Returns the diffusers-named weights; unknown BFL keys are an error. */
export function mapBflTransformer(file: TensorFile, cfg: FluxTransformerConfig): MappedWeights {
  const out = new Map<string, { src: TensorSource; file: string }>();
  const put = (name: string, src: TensorSource) => out.set(name, { src, file: file.label });
  const D = cfg.inner;
  const both = (fn: (suffix: 'weight' | 'bias') => void) => {
    fn('weight');
    fn('bias');
  };
  const direct: [string, string][] = [
    ['img_in', 'x_embedder'],
    ['txt_in', 'context_embedder'],
    ['time_in.in_layer', 'time_text_embed.timestep_embedder.linear_1'],
    ['time_in.out_layer', 'time_text_embed.timestep_embedder.linear_2'],
    ['vector_in.in_layer', 'time_text_embed.text_embedder.linear_1'],
    ['vector_in.out_layer', 'time_text_embed.text_embedder.linear_2'],
    ['final_layer.linear', 'proj_out'],
  ];
  if (cfg.guidanceEmbeds) {
    direct.push(
      ['guidance_in.in_layer', 'time_text_embed.guidance_embedder.linear_1'],
      ['guidance_in.out_layer', 'time_text_embed.guidance_embedder.linear_2'],
    );
  }
  const used = new Set<string>();
  const src = (name: string) => {
    used.add(name);
    if (!file.has(name))
      throw new CheckpointError(`${file.label}: tensor ${name} is missing (incomplete FLUX.1 transformer file)`);
    return file.source(name);
  };
  for (const [b, d] of direct) both((s) => put(`${d}.${s}`, src(`${b}.${s}`)));
  // BFL's final modulation is (shift, scale); diffusers' AdaLayerNormContinuous expects (scale, shift).
  both((s) => {
    const m = src(`final_layer.adaLN_modulation.1.${s}`);
    put(`norm_out.linear.${s}`, concatRows([sliceRows(m, D, D), sliceRows(m, 0, D)]));
  });
  for (let i = 0; i < cfg.numLayers; i++) {
    const b = `double_blocks.${i}`;
    const t = `transformer_blocks.${i}`;
    const pairs: [string, string][] = [
      ['img_mod.lin', 'norm1.linear'],
      ['txt_mod.lin', 'norm1_context.linear'],
      ['img_attn.proj', 'attn.to_out.0'],
      ['txt_attn.proj', 'attn.to_add_out'],
      ['img_mlp.0', 'ff.net.0.proj'],
      ['img_mlp.2', 'ff.net.2'],
      ['txt_mlp.0', 'ff_context.net.0.proj'],
      ['txt_mlp.2', 'ff_context.net.2'],
    ];
    for (const [x, y] of pairs) both((s) => put(`${t}.${y}.${s}`, src(`${b}.${x}.${s}`)));
    both((s) => {
      const img = src(`${b}.img_attn.qkv.${s}`);
      const txt = src(`${b}.txt_attn.qkv.${s}`);
      ['to_q', 'to_k', 'to_v'].forEach((p, k) => put(`${t}.attn.${p}.${s}`, sliceRows(img, k * D, D)));
      ['add_q_proj', 'add_k_proj', 'add_v_proj'].forEach((p, k) =>
        put(`${t}.attn.${p}.${s}`, sliceRows(txt, k * D, D)),
      );
    });
    put(`${t}.attn.norm_q.weight`, src(`${b}.img_attn.norm.query_norm.scale`));
    put(`${t}.attn.norm_k.weight`, src(`${b}.img_attn.norm.key_norm.scale`));
    put(`${t}.attn.norm_added_q.weight`, src(`${b}.txt_attn.norm.query_norm.scale`));
    put(`${t}.attn.norm_added_k.weight`, src(`${b}.txt_attn.norm.key_norm.scale`));
  }
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    const b = `single_blocks.${i}`;
    const t = `single_transformer_blocks.${i}`;
    both((s) => {
      put(`${t}.norm.linear.${s}`, src(`${b}.modulation.lin.${s}`));
      put(`${t}.proj_out.${s}`, src(`${b}.linear2.${s}`));
      const l1 = src(`${b}.linear1.${s}`);
      ['to_q', 'to_k', 'to_v'].forEach((p, k) => put(`${t}.attn.${p}.${s}`, sliceRows(l1, k * D, D)));
      put(`${t}.proj_mlp.${s}`, sliceRows(l1, 3 * D, l1.shape[0]! - 3 * D));
    });
    put(`${t}.attn.norm_q.weight`, src(`${b}.norm.query_norm.scale`));
    put(`${t}.attn.norm_k.weight`, src(`${b}.norm.key_norm.scale`));
  }
  const unknown = file.names().filter((n) => !used.has(n));
  if (unknown.length > 0) {
    throw new CheckpointError(
      `${file.label}: tensors ${unknown.slice(0, 3).join(', ')}${unknown.length > 3 ? ` and ${unknown.length - 3} more` : ''} are not part of a FLUX.1 transformer (a LoRA, or a different architecture?)`,
    );
  }
  return new MappedWeights(file.label, out);
}
