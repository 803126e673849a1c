import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { openTransformer, type TransformerInputs } from '../../src/engine/graphs/flux-transformer-session.ts';
import { SafetensorsFile } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

/** Helpers of the checkpoint tests (not a test file itself). */

export const cpu = { executionProvider: 'cpu' as const, threads: 2 };

/** The golden transformer inputs of case1 (64×64 image, dev). */
export function case1(): TransformerInputs {
  const gold = new SafetensorsFile(fixture('golden', 'transformer.safetensors'));
  const f = (n: string) => gold.readFloat32(`case1_${n}`);
  return {
    hidden_states: f('hidden_states'),
    encoder_hidden_states: f('encoder_hidden_states'),
    pooled_projections: f('pooled_projections'),
    timestep: f('timestep'),
    guidance: f('guidance'),
    img_ids: f('img_ids'),
    txt_ids: f('txt_ids'),
  };
}

/** The transformer output for case1 of the checkpoint at `source`. */
export async function sample(source: string): Promise<Float32Array> {
  const tr = await openTransformer(loadCheckpoint(source), cpu);
  try {
    return (await tr.run(case1())).sample!.data as Float32Array;
  } finally {
    await tr.release();
  }
}
