// LoRA files for tests: the files engineer's seeded writer (src/engine/tiny-model/lora.ts) in kohya's layout, sized
// for the tiny schnell checkpoint, with the ss_* metadata kohya's sd-scripts writes (trigger words, base model).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeTestLora } from '../../src/engine/tiny-model/lora.ts';
import { tinyFluxConfig } from '../support/fixtures.ts';

const TINY = tinyFluxConfig('tiny-flux-schnell');

export interface StyleFileOptions {
  /** ss_tag_frequency: trigger words by count. */
  tags?: Record<string, number>;
  baseModel?: string;
  rank?: number;
  /** Changes every weight: two files with different seeds differ (and hash differently). */
  seed?: number;
}

/** Writes `<dir>/<name>.safetensors` (attention layers, float32) and returns its path. */
export function writeStyleFile(dir: string, name: string, o: StyleFileOptions = {}): string {
  mkdirSync(dir, { recursive: true });
  const metadata: Record<string, string> = { ss_network_module: 'networks.lora_flux', ss_output_name: name };
  if (o.tags) metadata.ss_tag_frequency = JSON.stringify({ '1_dataset': o.tags });
  if (o.baseModel) metadata.ss_base_model_version = o.baseModel;
  const file = path.join(dir, `${name}.safetensors`);
  const rank = o.rank ?? 4;
  writeTestLora(file, {
    config: TINY,
    layout: 'kohya',
    rank,
    alpha: rank,
    seed: o.seed ?? 1,
    layers: 'attention',
    dtype: 'float32',
    metadata,
  });
  return file;
}
