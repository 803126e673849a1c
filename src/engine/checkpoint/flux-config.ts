import { z } from 'zod';
import type { ShapeSpec } from './check.ts';
import { CheckpointError } from './errors.ts';

/** FluxTransformer2DModel's config.json (diffusers), the fields the graph needs. */
const DiffusersFluxConfig = z.object({
  _class_name: z.literal('FluxTransformer2DModel').optional(),
  patch_size: z.number().int().default(1),
  in_channels: z.number().int().positive(),
  out_channels: z.number().int().positive().nullish(),
  num_layers: z.number().int().nonnegative(),
  num_single_layers: z.number().int().nonnegative(),
  attention_head_dim: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  joint_attention_dim: z.number().int().positive(),
  pooled_projection_dim: z.number().int().positive(),
  guidance_embeds: z.boolean().default(false),
  axes_dims_rope: z.array(z.number().int().positive()).default([16, 56, 56]),
});

/** What the FLUX transformer graph is built from, whichever layout the weights came in. */
export interface FluxTransformerConfig {
  inChannels: number;
  outChannels: number;
  numLayers: number;
  numSingleLayers: number;
  heads: number;
  headDim: number;
  /** heads · headDim */
  inner: number;
  /** MLP width (4 · inner in every FLUX.1 model) */
  mlp: number;
  jointAttentionDim: number;
  pooledProjectionDim: number;
  /** true for FLUX.1-dev (guidance-distilled), false for schnell */
  guidanceEmbeds: boolean;
  axesDimsRope: number[];
  ropeTheta: number;
}

/** Width of the sinusoidal timestep / guidance projection (diffusers Timesteps(num_channels=256)). */
export const TIME_PROJ_DIM = 256;

export function fluxConfigFromDiffusers(raw: unknown, file: string): FluxTransformerConfig {
  const parsed = DiffusersFluxConfig.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new CheckpointError(`${file}: not a FluxTransformer2DModel config (${issues})`);
  }
  const c = parsed.data;
  if (c.patch_size !== 1)
    throw new CheckpointError(
      `${file}: patch_size ${c.patch_size} is not supported (FLUX.1 uses 1; latents are packed 2×2 outside the transformer)`,
    );
  const cfg: FluxTransformerConfig = {
    inChannels: c.in_channels,
    outChannels: c.out_channels ?? c.in_channels,
    numLayers: c.num_layers,
    numSingleLayers: c.num_single_layers,
    heads: c.num_attention_heads,
    headDim: c.attention_head_dim,
    inner: c.num_attention_heads * c.attention_head_dim,
    mlp: 4 * c.num_attention_heads * c.attention_head_dim,
    jointAttentionDim: c.joint_attention_dim,
    pooledProjectionDim: c.pooled_projection_dim,
    guidanceEmbeds: c.guidance_embeds,
    axesDimsRope: c.axes_dims_rope,
    ropeTheta: 10000,
  };
  validateRope(cfg, file);
  return cfg;
}

export function validateRope(cfg: FluxTransformerConfig, file: string): void {
  const sum = cfg.axesDimsRope.reduce((a, b) => a + b, 0);
  if (sum !== cfg.headDim || cfg.axesDimsRope.some((d) => d % 2 !== 0)) {
    throw new CheckpointError(
      `${file}: axes_dims_rope [${cfg.axesDimsRope.join(',')}] must be even and sum to attention_head_dim ${cfg.headDim}`,
    );
  }
}

/** Every diffusers tensor name of FluxTransformer2DModel with the shape the config implies. */
export function fluxTransformerShapes(c: FluxTransformerConfig): ShapeSpec {
  const s = new Map<string, number[]>();
  const lin = (name: string, out: number, inp: number) => {
    s.set(`${name}.weight`, [out, inp]);
    s.set(`${name}.bias`, [out]);
  };
  const D = c.inner;
  lin('x_embedder', D, c.inChannels);
  lin('context_embedder', D, c.jointAttentionDim);
  lin('time_text_embed.timestep_embedder.linear_1', D, TIME_PROJ_DIM);
  lin('time_text_embed.timestep_embedder.linear_2', D, D);
  if (c.guidanceEmbeds) {
    lin('time_text_embed.guidance_embedder.linear_1', D, TIME_PROJ_DIM);
    lin('time_text_embed.guidance_embedder.linear_2', D, D);
  }
  lin('time_text_embed.text_embedder.linear_1', D, c.pooledProjectionDim);
  lin('time_text_embed.text_embedder.linear_2', D, D);
  for (let i = 0; i < c.numLayers; i++) {
    const b = `transformer_blocks.${i}`;
    lin(`${b}.norm1.linear`, 6 * D, D);
    lin(`${b}.norm1_context.linear`, 6 * D, D);
    for (const p of ['to_q', 'to_k', 'to_v', 'add_q_proj', 'add_k_proj', 'add_v_proj', 'to_out.0', 'to_add_out'])
      lin(`${b}.attn.${p}`, D, D);
    for (const n of ['norm_q', 'norm_k', 'norm_added_q', 'norm_added_k']) s.set(`${b}.attn.${n}.weight`, [c.headDim]);
    for (const ff of ['ff', 'ff_context']) {
      lin(`${b}.${ff}.net.0.proj`, c.mlp, D);
      lin(`${b}.${ff}.net.2`, D, c.mlp);
    }
  }
  for (let i = 0; i < c.numSingleLayers; i++) {
    const b = `single_transformer_blocks.${i}`;
    lin(`${b}.norm.linear`, 3 * D, D);
    for (const p of ['to_q', 'to_k', 'to_v']) lin(`${b}.attn.${p}`, D, D);
    for (const n of ['norm_q', 'norm_k']) s.set(`${b}.attn.${n}.weight`, [c.headDim]);
    lin(`${b}.proj_mlp`, c.mlp, D);
    lin(`${b}.proj_out`, D, D + c.mlp);
  }
  lin('norm_out.linear', 2 * D, D);
  lin('proj_out', c.outChannels, D);
  return { shapes: s };
}
