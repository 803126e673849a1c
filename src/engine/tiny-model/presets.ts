/**
 * Config files of the random checkpoints `make-tiny-model` writes, in the exact diffusers / transformers
 * formats of FLUX.1's repos (same keys, same classes), at reduced sizes.
 *
 * `tiny`: the shapes of fixtures/tiny-flux-dev (tests: a transformer step in milliseconds).
 *
 * `bench`: FLUX's architecture at a width and depth where one denoising step at 512×512 (1024 image
 * tokens + 512 text tokens) takes about a second on 2 CPU cores, so that benchmarks measure the real
 * graph structure in reasonable time. Sizing: inner dim 768 (6 heads × 128, the real head size, so RoPE
 * keeps its real axes (16, 56, 56)), 2 double + 4 single blocks. Each block costs ≈ 12·D² MACs per token
 * plus 2·S²·D for attention: with S = 1536, D = 768 that is ≈ 29 GFLOP per block, ≈ 175 GFLOP per step,
 * i.e. ~0.6–1 s at the 200–300 GFLOP/s ORT reaches on 2 cores. joint_attention_dim is 1024 instead of 4096:
 * it is T5's width, and a 4096-wide T5 at 512 tokens (even 2 layers, ~190 M parameters each) would make
 * the text encoder dominate the benchmark and the file ~1 GB. T5 is t5-v1_1-large-shaped (d_model 1024,
 * 16 heads × 64, gated d_ff 2816) with 2 layers; CLIP has CLIP-L's width (768, 12 heads, MLP 3072, so
 * pooled_projection_dim is the real 768) with 4 of its 12 layers; the VAE has a quarter of FLUX's
 * channels ([32, 64, 128, 128], one resnet per block; the real [128, 256, 512, 512] with two would cost
 * ~3 TFLOP per 512² decode, ~40 s here) so a 512² decode takes about a second.
 * Measured on the 2-core dev machine (ORT 1.30 CPU, fp32): transformer step 0.76–0.92 s after a 2.4 s
 * first run, session creation 5.0 s; CLIP 24 ms; T5 (512 tokens) 0.53 s; VAE decode 512² 1.3 s, encode 0.6 s.
 *
 * `wide`: FLUX.1's real transformer width and head geometry (inner 3072 = 24 heads × 128, RoPE axes 16/56/56,
 * joint_attention_dim 4096, pooled 768, MLP 12288) with 1 double and 2 single blocks of its 19 + 38: ≈ 0.68 G
 * transformer parameters (1.3 GB of bf16; 1/18 of FLUX.1-dev's 11.9 G), so a CPU can exercise real-width memory,
 * load time and per-block cost. The other components are as small as FLUX's interfaces let them be: T5 must be
 * 4096 wide (its states feed context_embedder) but gets 1 layer of 4 heads × 64 and d_ff 1024 (its 32128 × 4096
 * embedding, 0.13 G, is most of it); CLIP must pool 768 (CLIP-L's width), with 1 layer; the VAE is tiny's.
 *
 * `flux`: FLUX.1's real sizes throughout (19 double + 38 single blocks, T5-XXL's 24 layers, CLIP-L's 12, the real
 * VAE): ≈ 33 GB of random bf16, written by the GPU kit on the GPU machine (bench/gpu.ts), where nothing of that size
 * can travel.
 */

export type Preset = 'tiny' | 'bench' | 'wide' | 'flux';
export const PRESETS: readonly Preset[] = ['tiny', 'bench', 'wide', 'flux'];
export type Variant = 'dev' | 'schnell';

type Json = Record<string, unknown>;

export interface PresetConfigs {
  transformer: Json;
  textEncoder: Json;
  textEncoder2: Json;
  vae: Json;
}

const SIZES: Record<
  Preset,
  {
    transformer: {
      heads: number;
      headDim: number;
      layers: number;
      single: number;
      joint: number;
      pooled: number;
      axes: number[];
    };
    clip: { hidden: number; heads: number; inter: number; layers: number };
    t5: { dModel: number; heads: number; dKv: number; dFf: number; layers: number };
    vae: { channels: number[]; layers: number };
  }
> = {
  tiny: {
    transformer: { heads: 2, headDim: 16, layers: 2, single: 2, joint: 32, pooled: 16, axes: [4, 6, 6] },
    clip: { hidden: 16, heads: 2, inter: 32, layers: 2 },
    t5: { dModel: 32, heads: 4, dKv: 8, dFf: 64, layers: 2 },
    vae: { channels: [32, 32, 64, 64], layers: 1 },
  },
  bench: {
    transformer: { heads: 6, headDim: 128, layers: 2, single: 4, joint: 1024, pooled: 768, axes: [16, 56, 56] },
    clip: { hidden: 768, heads: 12, inter: 3072, layers: 4 },
    t5: { dModel: 1024, heads: 16, dKv: 64, dFf: 2816, layers: 2 },
    vae: { channels: [32, 64, 128, 128], layers: 1 },
  },
  wide: {
    transformer: { heads: 24, headDim: 128, layers: 1, single: 2, joint: 4096, pooled: 768, axes: [16, 56, 56] },
    clip: { hidden: 768, heads: 12, inter: 3072, layers: 1 },
    t5: { dModel: 4096, heads: 4, dKv: 64, dFf: 1024, layers: 1 },
    vae: { channels: [32, 32, 64, 64], layers: 1 },
  },
  flux: {
    transformer: { heads: 24, headDim: 128, layers: 19, single: 38, joint: 4096, pooled: 768, axes: [16, 56, 56] },
    clip: { hidden: 768, heads: 12, inter: 3072, layers: 12 },
    t5: { dModel: 4096, heads: 64, dKv: 64, dFf: 10240, layers: 24 },
    vae: { channels: [128, 256, 512, 512], layers: 2 },
  },
};

export function presetConfigs(preset: Preset, variant: Variant): PresetConfigs {
  const s = SIZES[preset];
  return {
    transformer: {
      _class_name: 'FluxTransformer2DModel',
      _diffusers_version: '0.31.0',
      attention_head_dim: s.transformer.headDim,
      axes_dims_rope: s.transformer.axes,
      guidance_embeds: variant === 'dev',
      in_channels: 64,
      joint_attention_dim: s.transformer.joint,
      num_attention_heads: s.transformer.heads,
      num_layers: s.transformer.layers,
      num_single_layers: s.transformer.single,
      patch_size: 1,
      pooled_projection_dim: s.transformer.pooled,
    },
    // FLUX's text_encoder/config.json keeps CLIP's legacy bos 0 / eos 2 / pad 1 (hence argmax pooling).
    textEncoder: {
      architectures: ['CLIPTextModel'],
      attention_dropout: 0.0,
      bos_token_id: 0,
      dropout: 0.0,
      eos_token_id: 2,
      hidden_act: 'quick_gelu',
      hidden_size: s.clip.hidden,
      initializer_factor: 1.0,
      initializer_range: 0.02,
      intermediate_size: s.clip.inter,
      layer_norm_eps: 1e-5,
      max_position_embeddings: 77,
      model_type: 'clip_text_model',
      num_attention_heads: s.clip.heads,
      num_hidden_layers: s.clip.layers,
      pad_token_id: 1,
      projection_dim: s.clip.hidden,
      torch_dtype: 'bfloat16',
      transformers_version: '4.45.0.dev0',
      vocab_size: 49408,
    },
    textEncoder2: {
      architectures: ['T5EncoderModel'],
      classifier_dropout: 0.0,
      d_ff: s.t5.dFf,
      d_kv: s.t5.dKv,
      d_model: s.t5.dModel,
      decoder_start_token_id: 0,
      dense_act_fn: 'gelu_new',
      dropout_rate: 0.1,
      eos_token_id: 1,
      feed_forward_proj: 'gated-gelu',
      initializer_factor: 1.0,
      is_encoder_decoder: true,
      is_gated_act: true,
      layer_norm_epsilon: 1e-6,
      model_type: 't5',
      num_decoder_layers: s.t5.layers,
      num_heads: s.t5.heads,
      num_layers: s.t5.layers,
      pad_token_id: 0,
      relative_attention_max_distance: 128,
      relative_attention_num_buckets: 32,
      tie_word_embeddings: false,
      torch_dtype: 'bfloat16',
      transformers_version: '4.45.0.dev0',
      use_cache: true,
      vocab_size: 32128,
    },
    vae: {
      _class_name: 'AutoencoderKL',
      _diffusers_version: '0.31.0',
      act_fn: 'silu',
      block_out_channels: s.vae.channels,
      down_block_types: s.vae.channels.map(() => 'DownEncoderBlock2D'),
      force_upcast: true,
      in_channels: 3,
      latent_channels: 16,
      latents_mean: null,
      latents_std: null,
      layers_per_block: s.vae.layers,
      mid_block_add_attention: true,
      norm_num_groups: 32,
      out_channels: 3,
      sample_size: 1024,
      scaling_factor: 0.3611,
      shift_factor: 0.1159,
      up_block_types: s.vae.channels.map(() => 'UpDecoderBlock2D'),
      use_post_quant_conv: false,
      use_quant_conv: false,
    },
  };
}

/** FLUX.1-dev's and FLUX.1-schnell's scheduler/scheduler_config.json. */
export function schedulerConfigJson(variant: Variant): Json {
  return {
    _class_name: 'FlowMatchEulerDiscreteScheduler',
    _diffusers_version: '0.30.0.dev0',
    base_image_seq_len: 256,
    base_shift: 0.5,
    max_image_seq_len: 4096,
    max_shift: 1.15,
    num_train_timesteps: 1000,
    shift: variant === 'dev' ? 3.0 : 1.0,
    use_dynamic_shifting: variant === 'dev',
  };
}

export const MODEL_INDEX: Json = {
  _class_name: 'FluxPipeline',
  _diffusers_version: '0.31.0',
  scheduler: ['diffusers', 'FlowMatchEulerDiscreteScheduler'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  text_encoder_2: ['transformers', 'T5EncoderModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  tokenizer_2: ['transformers', 'T5TokenizerFast'],
  transformer: ['diffusers', 'FluxTransformer2DModel'],
  vae: ['diffusers', 'AutoencoderKL'],
};
