import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CheckpointError } from './errors.ts';
import { WEIGHT_FILE } from './files.ts';
import { ModelSet } from './model-set.ts';
import { ROLES } from './parts.ts';
import type { FluxCheckpoint } from './types.ts';

/**
 * Opens a FLUX.1 checkpoint as the user has it (model-set.ts has the rule that finds each part):
 * - a diffusers folder (model_index.json + component folders), plain or a Hugging Face cache snapshot
 *   (`…/snapshots/<hash>/`, whose files are symlinks into `blobs/`; weights are read through their real paths),
 *   whose component folders may hold single files in other forms (GGUF, fp8, BFL's ae.safetensors);
 * - a Hugging Face cache repo folder (`models--black-forest-labs--FLUX.1-dev/`): the snapshot `refs/main` names;
 * - a folder of single files as ComfyUI users have them (flux1-dev*.safetensors / .gguf, ae.safetensors,
 *   clip_l.safetensors, t5xxl_*.safetensors, or one all-in-one checkpoint), with tokenizer folders;
 * - one such weights file: its parts, and the rest from the folder it is in.
 */
export function loadCheckpoint(source: string): FluxCheckpoint {
  if (!existsSync(source)) throw new CheckpointError(`model folder ${source} does not exist`);
  if (statSync(source).isFile()) {
    if (!WEIGHT_FILE.test(source))
      throw new CheckpointError(`${source}: expected a FLUX folder or a .safetensors / .gguf file`);
    const file = path.resolve(source);
    return new ModelSet(path.dirname(file), source, file);
  }
  const dir = resolveHfCacheRepo(source);
  if (
    !existsSync(path.join(dir, 'model_index.json')) &&
    !readdirSync(dir).some((f) => WEIGHT_FILE.test(f) || f === 'transformer')
  ) {
    throw new CheckpointError(
      `${source} is not a FLUX.1 checkpoint: no model_index.json (diffusers layout), no transformer/ folder and no weights file. ` +
        'Point MODEL_DIR / --model at the downloaded FLUX.1-dev or FLUX.1-schnell folder, or at a folder of FLUX.1 single files (README "Model files people have").',
    );
  }
  return new ModelSet(dir, source);
}

/**
 * One line for the load log: each part's file, key naming and storage, e.g.
 * "transformer: flux1-dev-Q4_0.gguf (bfl, Q4_0 ×304, F32 ×476); vae: ae.safetensors (bfl, BF16 ×244); …".
 * Reads headers only. A part the set does not have is said so (its error comes when it is loaded).
 */
export function describeForms(ck: FluxCheckpoint): string {
  return ROLES.map((role) => {
    try {
      const f = ck.form?.(role);
      return f ? `${role}: ${f.file} (${f.keys}, ${f.storage})` : `${role}: ?`;
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      return `${role}: not found`;
    }
  }).join('; ');
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
  throw new CheckpointError(
    `${dir} is a Hugging Face cache folder with ${all.length} snapshots and no usable refs/main; point at one of ${snaps}/<hash>`,
  );
}

export { CheckpointError } from './errors.ts';
export type { Component, ComponentForm, ComponentName, FluxCheckpoint, AssetFolder, Json } from './types.ts';
export type { Role } from './parts.ts';
export type { FluxTransformerConfig } from './flux-config.ts';
export { checkShapes, type ShapeSpec } from './check.ts';
