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
  readonly layout: 'diffusers' | 'bfl';
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
}
