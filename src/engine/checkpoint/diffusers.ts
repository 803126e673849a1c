import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { openSafetensorsWeights, type NamedWeights } from '../weights/named-weights.ts';
import { checkShapes, type ShapeSpec } from './check.ts';
import { autoencoderKLShapes, clipTextShapes, t5EncoderShapes } from './component-specs.ts';
import { CheckpointError } from './errors.ts';
import { fluxConfigFromDiffusers, fluxTransformerShapes, type FluxTransformerConfig } from './flux-config.ts';
import type { AssetFolder, Component, ComponentName, FluxCheckpoint, Json } from './types.ts';

/**
 * The diffusers folder layout of FLUX.1-dev / FLUX.1-schnell: model_index.json naming each component's class,
 * one folder per component with config.json and safetensors weights (single file or shards + index).
 */

const PIPELINES = new Set(['FluxPipeline']);

/** Per component: the classes we can run, the weights file stem, and the shape spec. */
const COMPONENTS: Record<ComponentName, { classes: string[]; stem: string; spec: (cfg: Json, file: string) => ShapeSpec }> = {
  text_encoder: { classes: ['CLIPTextModel'], stem: 'model', spec: clipTextShapes },
  text_encoder_2: { classes: ['T5EncoderModel'], stem: 'model', spec: t5EncoderShapes },
  vae: { classes: ['AutoencoderKL'], stem: 'diffusion_pytorch_model', spec: autoencoderKLShapes },
};
const TRANSFORMER_CLASSES = ['FluxTransformer2DModel'];

export function readJson(file: string, label: string): Json {
  if (!existsSync(file)) throw new CheckpointError(`${label} is missing`);
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new CheckpointError(`${label}: cannot parse (${(e as Error).message})`);
  }
}

export class DiffusersCheckpoint implements FluxCheckpoint {
  readonly layout = 'diffusers';
  readonly variant: 'dev' | 'schnell';
  readonly transformerConfig: FluxTransformerConfig;
  private readonly index: Json;
  private transformer?: NamedWeights;
  private readonly components = new Map<ComponentName, Component>();

  /** `dir` is the snapshot/plain folder holding model_index.json; `source` is what the user gave. */
  constructor(readonly dir: string, readonly source: string = dir) {
    this.index = readJson(path.join(dir, 'model_index.json'), 'model_index.json');
    const cls = String(this.index._class_name);
    if (!PIPELINES.has(cls)) {
      throw new CheckpointError(`model_index.json: pipeline class ${cls} is not supported (scenewright runs FluxPipeline checkpoints: FLUX.1-dev, FLUX.1-schnell)`);
    }
    this.declared('transformer', TRANSFORMER_CLASSES);
    this.transformerConfig = fluxConfigFromDiffusers(readJson(path.join(dir, 'transformer', 'config.json'), 'transformer/config.json'), 'transformer/config.json');
    this.variant = this.transformerConfig.guidanceEmbeds ? 'dev' : 'schnell';
  }

  /** The class model_index.json declares for a component, checked against what we support. */
  private declared(name: string, supported: string[]): string {
    const entry = this.index[name];
    if (!Array.isArray(entry) || typeof entry[1] !== 'string') {
      throw new CheckpointError(`model_index.json has no "${name}" component (expected e.g. ["diffusers", "${supported[0]}"])`);
    }
    if (!supported.includes(entry[1])) {
      throw new CheckpointError(`model_index.json: ${name} is a ${entry[1]}, which scenewright cannot run (supported: ${supported.join(', ')})`);
    }
    const folder = path.join(this.dir, name);
    if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new CheckpointError(`${name}/ folder is missing (model_index.json lists it)`);
    return entry[1];
  }

  transformerWeights(): NamedWeights {
    if (!this.transformer) {
      const w = openSafetensorsWeights(path.join(this.dir, 'transformer'), 'diffusion_pytorch_model', 'transformer');
      checkShapes(w, fluxTransformerShapes(this.transformerConfig), 'transformer/config.json');
      this.transformer = w;
    }
    return this.transformer;
  }

  component(name: ComponentName): Component {
    const hit = this.components.get(name);
    if (hit) return hit;
    const def = COMPONENTS[name];
    const className = this.declared(name, def.classes);
    const configFile = `${name}/config.json`;
    const config = readJson(path.join(this.dir, name, 'config.json'), configFile);
    const weights = openSafetensorsWeights(path.join(this.dir, name), def.stem, name);
    checkShapes(weights, def.spec(config, configFile), configFile);
    const c: Component = { name, className, config, configFile, weights };
    this.components.set(name, c);
    return c;
  }

  assetFolder(name: AssetFolder): string {
    const folder = path.join(this.dir, name);
    if (!existsSync(folder)) throw new CheckpointError(`${name}/ folder is missing from ${this.source}`);
    return folder;
  }

  schedulerConfig(): Json {
    return readJson(path.join(this.assetFolder('scheduler'), 'scheduler_config.json'), 'scheduler/scheduler_config.json');
  }
}
