import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { DType, TensorSource } from '../onnx/graph.ts';
import { SafetensorsFile, WeightsError } from './safetensors.ts';

/**
 * A model's weights by name, whatever the files look like (one file, shards, or a single file in another
 * naming scheme mapped to diffusers names). Graph code only sees this interface.
 */
export interface NamedWeights {
  /** How errors name these weights, e.g. "transformer/diffusion_pytorch_model.safetensors". */
  readonly label: string;
  names(): string[];
  has(name: string): boolean;
  /** dtype and shape of a tensor, and the file (label) that holds it. */
  info(name: string): { dtype: DType; shape: number[]; file: string };
  /** Where the bytes are; throws WeightsError naming the tensor if it is missing. */
  source(name: string): TensorSource;
  readFloat32(name: string): Float32Array;
}

/** Weights spread over one or more safetensors files (a shard index maps names to files). */
export class SafetensorsWeights implements NamedWeights {
  private readonly byName = new Map<string, SafetensorsFile>();

  constructor(
    readonly label: string,
    files: SafetensorsFile[],
    weightMap?: Record<string, string>,
  ) {
    if (weightMap) {
      const byBase = new Map(files.map((f) => [path.basename(f.path), f]));
      for (const [name, shard] of Object.entries(weightMap)) {
        const f = byBase.get(shard);
        if (!f?.has(name))
          throw new WeightsError(
            `${label}: the index maps tensor ${name} to ${shard}, but that shard has no such tensor (mismatched shards; download the model again)`,
          );
        this.byName.set(name, f);
      }
    } else {
      for (const f of files) for (const n of f.names()) this.byName.set(n, f);
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private file(name: string): SafetensorsFile {
    const f = this.byName.get(name);
    if (!f)
      throw new WeightsError(
        `${this.label}: tensor ${name} is missing (is this the right model, complete and in diffusers layout?)`,
      );
    return f;
  }

  info(name: string) {
    const f = this.file(name);
    const t = f.info(name);
    return { dtype: t.dtype, shape: t.shape, file: f.label };
  }

  source(name: string): TensorSource {
    return this.file(name).source(name);
  }

  readFloat32(name: string): Float32Array {
    return this.file(name).readFloat32(name);
  }
}

/**
 * Opens `<dir>/<stem>.safetensors`, or the shards listed by `<dir>/<stem>.safetensors.index.json`.
 * `labelDir` is the folder name used in messages (e.g. "transformer").
 */
export function openSafetensorsWeights(dir: string, stem: string, labelDir: string): SafetensorsWeights {
  const single = path.join(dir, `${stem}.safetensors`);
  const index = `${single}.index.json`;
  const rel = (p: string) => `${labelDir}/${path.basename(p)}`;
  if (existsSync(index)) {
    let parsed: { weight_map?: Record<string, string> };
    try {
      parsed = JSON.parse(readFileSync(index, 'utf8')) as typeof parsed;
    } catch (e) {
      throw new WeightsError(`${rel(index)}: not valid JSON (${(e as Error).message})`);
    }
    const map = parsed.weight_map;
    if (!map || typeof map !== 'object') throw new WeightsError(`${rel(index)}: has no "weight_map" object`);
    const shards = [...new Set(Object.values(map))];
    const files = shards.map((s) => {
      const p = path.join(dir, s);
      if (s.includes('/') || s.includes('\\'))
        throw new WeightsError(`${rel(index)}: shard name "${s}" must be a plain file name`);
      if (!existsSync(p)) {
        const example = Object.keys(map).find((k) => map[k] === s);
        throw new WeightsError(
          `${rel(index)} lists shard ${s} (holding e.g. tensor ${example}), but ${labelDir}/${s} is missing; download the missing shard`,
        );
      }
      return new SafetensorsFile(p, rel(p));
    });
    return new SafetensorsWeights(rel(index), files, map);
  }
  if (existsSync(single)) return new SafetensorsWeights(rel(single), [new SafetensorsFile(single, rel(single))]);
  throw new WeightsError(
    `${labelDir}/: neither ${stem}.safetensors nor ${stem}.safetensors.index.json found (only .safetensors weights are supported)`,
  );
}
