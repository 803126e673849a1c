import type { NamedWeights } from '../weights/named-weights.ts';
import type { FluxTransformerConfig } from './flux-config.ts';

export type Json = Record<string, unknown>;

/** The components besides the transformer that a FLUX pipeline loads (diffusers folder names). */
export type ComponentName = 'text_encoder' | 'text_encoder_2' | 'vae';
export type AssetFolder = 'tokenizer' | 'tokenizer_2' | 'scheduler';

export interface Component {
  name: ComponentName;
  /** The class the checkpoint declares (CLIPTextModel, T5EncoderModel, AutoencoderKL). */
  className: string;
  /** config.json, parsed. */
  config: Json;
  /** How messages name the config file, e.g. "vae/config.json". */
  configFile: string;
  /** Tensors by their diffusers/transformers names, shapes already checked against the config. */
  weights: NamedWeights;
}

/**
 * A FLUX.1 checkpoint as the graphs see it: configs and named weights, whatever the layout on disk.
 * Weights are opened and shape-checked on first use, so a command that needs only the transformer does not
 * read the VAE.
 */
export interface FluxCheckpoint {
  /** The folder (or file) the user gave, for messages. */
  readonly source: string;
  /** 'diffusers': a folder with model_index.json (its parts may still be single files); 'single-files': none. */
  readonly layout: 'diffusers' | 'single-files';
  /** dev = guidance-distilled (guidance embedding present); schnell = none. */
  readonly variant: 'dev' | 'schnell';
  readonly transformerConfig: FluxTransformerConfig;
  /** Transformer weights under diffusers names (FluxTransformer2DModel keys). */
  transformerWeights(): NamedWeights;
  component(name: ComponentName): Component;
  /** The folder of tokenizer files or the scheduler config. */
  assetFolder(name: AssetFolder): string;
  /** scheduler/scheduler_config.json, parsed. */
  schedulerConfig(): Json;
  /** Which file a part is read from and in what form (for the log line at load); reads headers only. */
  form?(part: 'transformer' | ComponentName): ComponentForm;
}

/** How one part of a checkpoint is stored. */
export interface ComponentForm {
  /** The file (or shard index), as messages name it. */
  file: string;
  /** Key naming: diffusers/transformers', BFL's (LDM for the VAE), or a ComfyUI all-in-one's prefixed BFL names. */
  keys: 'diffusers' | 'transformers' | 'bfl' | 'comfyui';
  /** Tensor count per storage type, most first, e.g. "F8_E4M3 ×152, BF16 ×204" or "Q4_0 ×304, F32 ×476". */
  storage: string;
}
