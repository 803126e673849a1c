import { existsSync, readFileSync } from 'node:fs';
import { CheckpointError } from './errors.ts';
import type { Json } from './types.ts';

/**
 * The diffusers folder layout of FLUX.1-dev / FLUX.1-schnell: model_index.json naming each component's class,
 * one folder per component with config.json and safetensors weights (single file or shards + index).
 * The folders themselves are read by model-set.ts, which also accepts other forms of each part.
 */

const PIPELINES = new Set(['FluxPipeline']);

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

/** model_index.json must describe a pipeline we run. */
export function checkPipeline(index: Json): void {
  const cls = String(index._class_name);
  if (!PIPELINES.has(cls)) {
    throw new CheckpointError(
      `model_index.json: pipeline class ${cls} is not supported (scenewright runs FluxPipeline checkpoints: FLUX.1-dev, FLUX.1-schnell)`,
    );
  }
}

/** The class model_index.json declares for a component, checked against what we support. */
export function checkDeclared(index: Json, name: string, supported: string[]): string {
  const entry = index[name];
  if (!Array.isArray(entry) || typeof entry[1] !== 'string') {
    throw new CheckpointError(
      `model_index.json has no "${name}" component (expected e.g. ["diffusers", "${supported[0]}"])`,
    );
  }
  if (!supported.includes(entry[1])) {
    throw new CheckpointError(
      `model_index.json: ${name} is a ${entry[1]}, which scenewright cannot run (supported: ${supported.join(', ')})`,
    );
  }
  return entry[1];
}
