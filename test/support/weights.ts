import { expect } from 'vitest';
import type { FluxCheckpoint } from '../../src/engine/checkpoint/types.ts';
import { openTransformer, type TransformerInputs } from '../../src/engine/graphs/flux-transformer-session.ts';
import type { TensorSource } from '../../src/engine/onnx/graph.ts';
import type { NamedWeights } from '../../src/engine/weights/named-weights.ts';
import { SafetensorsFile } from '../../src/engine/weights/safetensors.ts';
import { sourceToFloat32 } from '../../src/engine/weights/tensor-source.ts';
import { fixture } from './fixtures.ts';

/** Helpers for the weight-form parity tests: a golden transformer input, JS-decoded reference weights, one forward. */

export const cpu = { executionProvider: 'cpu' as const, threads: 2 };

/** The golden transformer inputs of a case (fixtures/golden/transformer.safetensors, dev). */
export function caseInputs(c = 'case1'): TransformerInputs {
  const gold = new SafetensorsFile(fixture('golden', 'transformer.safetensors'));
  const f = (n: string) => gold.readFloat32(`${c}_${n}`);
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

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * The same names with every tensor decoded in JS to float32 in memory: MatMulNBits parts by nbits.ts's formula,
 * fp8 by its table, GGUF blocks by ggml's definitions (gguf/blocks.ts), 16-bit floats widened.
 */
export function decodedInJs(w: NamedWeights): NamedWeights {
  const src = (name: string): TensorSource => {
    const s = w.source(name);
    const v = sourceToFloat32(s);
    return { dtype: 'float32', shape: s.shape, data: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
  };
  return {
    label: `${w.label} (decoded in JS)`,
    names: () => w.names(),
    has: (n) => w.has(n),
    info: (n) => w.info(n),
    source: src,
    readFloat32: (n) => w.readFloat32(n),
  };
}

/** `ck` with other transformer weights. */
export function withTransformer(ck: FluxCheckpoint, w: NamedWeights): FluxCheckpoint {
  return {
    source: ck.source,
    layout: ck.layout,
    variant: ck.variant,
    transformerConfig: ck.transformerConfig,
    transformerWeights: () => w,
    component: (n) => ck.component(n),
    assetFolder: (n) => ck.assetFolder(n),
    schedulerConfig: () => ck.schedulerConfig(),
  };
}

/** One transformer forward on CPU (float32 graph). */
export async function velocity(ck: FluxCheckpoint, x: TransformerInputs = caseInputs()): Promise<Float32Array> {
  const tr = await openTransformer(ck, cpu);
  try {
    return (await tr.run(x)).sample!.data as Float32Array;
  } finally {
    await tr.release();
  }
}
