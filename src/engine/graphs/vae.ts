import { UserError } from '../../config/errors.ts';
import {
  add,
  attention,
  cast,
  div,
  Graph,
  linear,
  mul,
  reshape,
  shapeOf,
  silu,
  slice,
  transpose,
  type FloatType,
  type Value,
} from '../onnx/index.ts';
import { configReader, type ComponentInput } from './clip-config.ts';

/**
 * diffusers `AutoencoderKL` (FLUX's vae) as two ONNX graphs, decoder and encoder, with FLUX's latent
 * scaling inside them so that they speak the pipeline's latent space (DESIGN.md §5):
 *
 *   decoder: latent [B, 16, h, w] (the pipeline's final latent, unpacked) → z = latent / scaling + shift
 *            → image [B, 3, 8h, 8w] in [-1, 1] scale, not clamped.
 *   encoder: image [B, 3, H, W] → latent = (mean − shift) · scaling [B, 16, H/8, W/8]; also `mean` and
 *            `logvar` (clamped to [−30, 20]) of the raw latent distribution.
 *
 * Structure: conv_in, Down/UpEncoderBlock2D of ResnetBlock2D (GroupNorm → SiLU → 3×3 conv, twice, with
 * a 1×1 shortcut when channels change), stride-2 downsampling after F.pad(0,1,0,1), nearest ×2
 * upsampling, a mid block of resnet / single-head self-attention / resnet, GroupNorm → SiLU → conv_out.
 * Spatial sizes are symbolic, so one graph serves every image size.
 */
export interface VaeConfig {
  blockOutChannels: number[];
  layersPerBlock: number;
  latentChannels: number;
  groups: number;
  eps: number;
  scalingFactor: number;
  shiftFactor: number;
  midAttention: boolean;
  quantConv: boolean;
  postQuantConv: boolean;
}

export function vaeConfig(c: ComponentInput): VaeConfig {
  const r = configReader(c.config, c.configFile);
  const act = r.str('act_fn', 'silu');
  if (act !== 'silu')
    throw new UserError(`${c.configFile}: act_fn "${act}" is not supported (AutoencoderKL uses silu)`);
  for (const key of ['down_block_types', 'up_block_types'] as const) {
    const types = c.config[key];
    const want = key === 'down_block_types' ? 'DownEncoderBlock2D' : 'UpDecoderBlock2D';
    if (Array.isArray(types) && !types.every((t) => t === want)) {
      throw new UserError(`${c.configFile}: ${key} ${JSON.stringify(types)} is not supported (expected only ${want})`);
    }
  }
  const cfg: VaeConfig = {
    blockOutChannels: r.ints('block_out_channels'),
    layersPerBlock: r.int('layers_per_block', 1),
    latentChannels: r.int('latent_channels'),
    groups: r.int('norm_num_groups', 32),
    eps: 1e-6,
    scalingFactor: r.num('scaling_factor', 1),
    shiftFactor: r.has('shift_factor') ? r.num('shift_factor') : 0,
    midAttention: c.config.mid_block_add_attention !== false,
    quantConv: c.config.use_quant_conv !== false,
    postQuantConv: c.config.use_post_quant_conv !== false,
  };
  for (const ch of cfg.blockOutChannels) {
    if (ch % cfg.groups !== 0)
      throw new UserError(
        `${c.configFile}: block_out_channels ${ch} is not divisible by norm_num_groups ${cfg.groups}`,
      );
  }
  if (cfg.scalingFactor === 0) throw new UserError(`${c.configFile}: scaling_factor must not be 0`);
  return cfg;
}

export interface VaeGraphOptions {
  computeType?: FloatType;
  attention?: 'mha' | 'explicit';
  /** As TextGraphOptions.linear (the mid-block attention's projections). */
  linear?: 'fused' | 'transpose';
}

class VaeBuilder {
  readonly g: Graph;
  constructor(
    readonly c: ComponentInput,
    readonly cfg: VaeConfig,
    name: string,
    readonly opts: VaeGraphOptions,
  ) {
    this.g = new Graph(name, {
      computeType: opts.computeType ?? 'float32',
      linear: opts.linear,
      doc: `AutoencoderKL ${name} from ${c.configFile}`,
    });
  }

  w(name: string): Value {
    return this.g.weight(name, this.c.weights.source(name));
  }

  conv(x: Value, name: string, o: { stride?: number; pads?: number[] } = {}): Value {
    const k = this.c.weights.info(`${name}.weight`).shape[2] ?? 1;
    const p = (k - 1) / 2;
    return this.g.op('Conv', [x, this.w(`${name}.weight`), this.w(`${name}.bias`)], {
      pads: o.pads ?? [p, p, p, p],
      strides: [o.stride ?? 1, o.stride ?? 1],
    });
  }

  /**
   * GroupNorm as Reshape → InstanceNormalization over [B, groups, rest] → Reshape → per-channel affine:
   * the same maths as torch's GroupNorm, from ops every execution provider has.
   */
  groupNorm(x: Value, name: string, channels: number): Value {
    const g = this.g;
    const G = this.cfg.groups;
    const grouped = reshape(x, [0, G, -1]);
    const normed = g.op('InstanceNormalization', [grouped, g.fill([G], 1), g.fill([G], 0)], { epsilon: this.cfg.eps });
    const back = g.op('Reshape', [normed, shapeOf(x)]);
    const scale = reshape(this.w(`${name}.weight`), [channels, 1, 1]);
    const bias = reshape(this.w(`${name}.bias`), [channels, 1, 1]);
    return add(mul(back, scale), bias);
  }

  resnet(x: Value, name: string, cin: number, cout: number): Value {
    return this.g.scope(name, () => {
      let h = this.conv(silu(this.groupNorm(x, `${name}.norm1`, cin)), `${name}.conv1`);
      h = this.conv(silu(this.groupNorm(h, `${name}.norm2`, cout)), `${name}.conv2`);
      const shortcut = cin !== cout ? this.conv(x, `${name}.conv_shortcut`) : x;
      return add(shortcut, h);
    });
  }

  /** diffusers Attention as the VAE mid block uses it: one head over all pixels, residual added. */
  attention(x: Value, name: string, channels: number): Value {
    const W = this.c.weights;
    // Old diffusers checkpoints named these query/key/value/proj_attn.
    const legacy = !W.has(`${name}.to_q.weight`) && W.has(`${name}.query.weight`);
    const names = legacy ? ['query', 'key', 'value', 'proj_attn'] : ['to_q', 'to_k', 'to_v', 'to_out.0'];
    return this.g.scope(name, () => {
      const h = this.groupNorm(x, `${name}.group_norm`, channels);
      const tokens = transpose(reshape(h, [0, channels, -1]), [0, 2, 1]); // [B, HW, C]
      const proj = (i: number, v: Value) =>
        linear(v, this.w(`${name}.${names[i]}.weight`), this.w(`${name}.${names[i]}.bias`));
      const a = attention(proj(0, tokens), proj(1, tokens), proj(2, tokens), {
        heads: 1,
        headDim: channels,
        impl: this.opts.attention ?? 'mha',
      });
      const out = transpose(proj(3, a), [0, 2, 1]); // [B, C, HW]
      return add(this.g.op('Reshape', [out, shapeOf(x)]), x);
    });
  }

  midBlock(x: Value, prefix: string, channels: number): Value {
    let h = this.resnet(x, `${prefix}.mid_block.resnets.0`, channels, channels);
    if (this.cfg.midAttention) h = this.attention(h, `${prefix}.mid_block.attentions.0`, channels);
    return this.resnet(h, `${prefix}.mid_block.resnets.1`, channels, channels);
  }

  toCompute(x: Value): Value {
    return cast(x, this.g.computeType);
  }
}

export function buildVaeDecoderGraph(c: ComponentInput, opts: VaeGraphOptions = {}): Graph {
  const cfg = vaeConfig(c);
  const b = new VaeBuilder(c, cfg, 'vae_decoder', opts);
  const g = b.g;
  const ch = cfg.blockOutChannels;
  const latent = g.input('latent', 'float32', ['B', cfg.latentChannels, 'h', 'w']);
  // FluxPipeline: latents / scaling_factor + shift_factor, before vae.decode.
  let h = add(div(b.toCompute(latent), g.scalar(cfg.scalingFactor)), g.scalar(cfg.shiftFactor));
  if (cfg.postQuantConv) h = b.conv(h, 'post_quant_conv');
  h = b.conv(h, 'decoder.conv_in');
  const rev = [...ch].reverse();
  h = b.midBlock(h, 'decoder', rev[0]!);
  let cur = rev[0]!;
  rev.forEach((cout, i) => {
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      h = b.resnet(h, `decoder.up_blocks.${i}.resnets.${j}`, cur, cout);
      cur = cout;
    }
    if (i < rev.length - 1) {
      h = g.op('Resize', [h, null, g.constant([1, 1, 2, 2], [4], 'float32')], {
        mode: 'nearest',
        coordinate_transformation_mode: 'asymmetric',
        nearest_mode: 'floor',
      });
      h = b.conv(h, `decoder.up_blocks.${i}.upsamplers.0.conv`);
    }
  });
  h = b.conv(silu(b.groupNorm(h, 'decoder.conv_norm_out', cur)), 'decoder.conv_out');
  g.output(cast(h, 'float32'), 'image', 'float32', ['B', 3, 'H', 'W']);
  return g;
}

export function buildVaeEncoderGraph(c: ComponentInput, opts: VaeGraphOptions = {}): Graph {
  const cfg = vaeConfig(c);
  const b = new VaeBuilder(c, cfg, 'vae_encoder', opts);
  const g = b.g;
  const ch = cfg.blockOutChannels;
  const image = g.input('image', 'float32', ['B', 3, 'H', 'W']);
  let h = b.conv(b.toCompute(image), 'encoder.conv_in');
  let cur = ch[0]!;
  ch.forEach((cout, i) => {
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      h = b.resnet(h, `encoder.down_blocks.${i}.resnets.${j}`, cur, cout);
      cur = cout;
    }
    // Downsample2D with padding 0: F.pad(x, (0, 1, 0, 1)) then a stride-2 3×3 conv.
    if (i < ch.length - 1)
      h = b.conv(h, `encoder.down_blocks.${i}.downsamplers.0.conv`, { stride: 2, pads: [0, 0, 1, 1] });
  });
  h = b.midBlock(h, 'encoder', cur);
  h = b.conv(silu(b.groupNorm(h, 'encoder.conv_norm_out', cur)), 'encoder.conv_out');
  if (cfg.quantConv) h = b.conv(h, 'quant_conv');
  const L = cfg.latentChannels;
  const mean = slice(h, [0], [L], [1]);
  const logvar = g.op('Clip', [slice(h, [L], [2 * L], [1]), g.scalar(-30), g.scalar(20)]);
  const latent = mul(add(mean, g.scalar(-cfg.shiftFactor)), g.scalar(cfg.scalingFactor));
  g.output(cast(latent, 'float32'), 'latent', 'float32', ['B', L, 'h', 'w']);
  g.output(cast(mean, 'float32'), 'mean', 'float32', ['B', L, 'h', 'w']);
  g.output(cast(logvar, 'float32'), 'logvar', 'float32', ['B', L, 'h', 'w']);
  return g;
}
