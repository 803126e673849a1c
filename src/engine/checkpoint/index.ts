import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { BflCheckpoint } from './bfl.ts';
import { DiffusersCheckpoint } from './diffusers.ts';
import { CheckpointError } from './errors.ts';
import type { FluxCheckpoint } from './types.ts';

/**
 * Opens a FLUX.1 checkpoint as the user has it:
 * - a diffusers folder (model_index.json + component folders), plain or a Hugging Face cache snapshot
 *   (`…/snapshots/<hash>/`, whose files are symlinks into `blobs/`; weights are read through their real paths);
 * - a Hugging Face cache repo folder (`models--black-forest-labs--FLUX.1-dev/`): the snapshot `refs/main` names;
 * - a black-forest-labs single-file transformer (`flux1-dev.safetensors`), or a folder holding one.
 */
export function loadCheckpoint(source: string): FluxCheckpoint {
  if (!existsSync(source)) throw new CheckpointError(`model folder ${source} does not exist`);
  if (statSync(source).isFile()) {
    if (!source.endsWith('.safetensors')) throw new CheckpointError(`${source}: expected a FLUX folder or a .safetensors file`);
    return new BflCheckpoint(path.resolve(source), source);
  }
  const dir = resolveHfCacheRepo(source);
  if (existsSync(path.join(dir, 'model_index.json'))) return new DiffusersCheckpoint(dir, source);
  const single = readdirSync(dir).filter((f) => /^(flux.*|.*flux1?-(dev|schnell).*)\.safetensors$/i.test(f) && f !== 'ae.safetensors');
  if (single.length === 1) return new BflCheckpoint(path.join(dir, single[0]!), source);
  throw new CheckpointError(
    `${source} is not a FLUX.1 checkpoint: no model_index.json (diffusers layout) and no single flux*.safetensors file. ` +
      'Point MODEL_DIR / --model at the downloaded FLUX.1-dev or FLUX.1-schnell folder.',
  );
}

/** A Hugging Face cache repo folder → its snapshot (refs/main, else the only snapshot). Other folders unchanged. */
function resolveHfCacheRepo(dir: string): string {
  const snaps = path.join(dir, 'snapshots');
  if (existsSync(path.join(dir, 'model_index.json')) || !existsSync(snaps)) return dir;
  const ref = path.join(dir, 'refs', 'main');
  if (existsSync(ref)) {
    const hash = readFileSync(ref, 'utf8').trim();
    if (existsSync(path.join(snaps, hash))) return path.join(snaps, hash);
  }
  const all = readdirSync(snaps);
  if (all.length === 1) return path.join(snaps, all[0]!);
  throw new CheckpointError(`${dir} is a Hugging Face cache folder with ${all.length} snapshots and no usable refs/main; point at one of ${snaps}/<hash>`);
}

export { CheckpointError } from './errors.ts';
export type { Component, ComponentName, FluxCheckpoint, AssetFolder, Json } from './types.ts';
export type { FluxTransformerConfig } from './flux-config.ts';
export { checkShapes, type ShapeSpec } from './check.ts';
