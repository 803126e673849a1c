import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { decodeRows } from '../../src/engine/weights/gguf/blocks.ts';
import { t5HfToGgufName } from '../../src/engine/weights/gguf/t5-names.ts';
import { encodeRows, writeGguf, type GgufTensorInput } from '../../src/engine/weights/gguf/writer.ts';
import { SafetensorsFile } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

/**
 * GGUF parts in model sets: a city96-style FLUX transformer (BFL key names, linear weights in a block format) and a
 * llama.cpp T5 encoder (its own tensor names), written here by the project's GGUF writer from the tiny fixtures.
 */

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-gguf-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every tensor of a safetensors file as GGUF: 2-D weights whose rows are whole blocks in `format`, the rest F32. */
function ggufTensors(file: string, format: 'Q8_0' | 'Q4_0', rename: (n: string) => string = (n) => n): GgufTensorInput[] {
  const f = new SafetensorsFile(file);
  return f.names().map((n) => {
    const shape = f.info(n).shape;
    const values = f.readFloat32(n);
    const quant = shape.length === 2 && shape[1]! % 32 === 0 && n.endsWith('.weight');
    const fmt = quant ? format : 'F32';
    return { name: rename(n), format: fmt, shape, data: encodeRows(fmt, values, quant ? shape[0]! : 1, values.length / (quant ? shape[0]! : 1)) };
  });
}

function diffusersWithout(name: string, part: string): string {
  const dir = path.join(tmp, name);
  cpSync(fixture('tiny-flux-dev'), dir, { recursive: true });
  for (const f of ['diffusion_pytorch_model.safetensors', 'model.safetensors']) rmSync(path.join(dir, part, f), { force: true });
  return dir;
}

describe('GGUF files in a model set', () => {
  it('a FLUX transformer in Q8_0 (BFL names) maps to diffusers names as encoded rows of the same bytes', () => {
    const dir = diffusersWithout('q8', 'transformer');
    const tensors = ggufTensors(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), 'Q8_0');
    writeGguf(path.join(dir, 'transformer', 'flux1-dev-Q8_0.gguf'), { metadata: { 'general.architecture': 'flux' }, tensors });
    const ck = loadCheckpoint(dir);
    expect(ck.transformerConfig).toEqual(loadCheckpoint(fixture('tiny-flux-dev')).transformerConfig);
    const w = ck.transformerWeights();
    expect(w.names()).toHaveLength(112);
    const src = w.source('transformer_blocks.0.attn.to_v.weight');
    expect(src.encoded?.format).toBe('Q8_0');
    expect(src.shape).toEqual([32, 32]);
    // The v rows of the fused qkv, decoded as ggml does, are what the mapped tensor decodes to.
    const qkv = tensors.find((t) => t.name === 'double_blocks.0.img_attn.qkv.weight')!;
    expect(w.readFloat32('transformer_blocks.0.attn.to_v.weight')).toEqual(decodeRows('Q8_0', qkv.data, 96, 32).subarray(64 * 32));
    expect(ck.form?.('transformer')).toMatchObject({ file: 'transformer/flux1-dev-Q8_0.gguf', keys: 'bfl' });
    expect(ck.form?.('transformer').storage).toMatch(/^F32 ×\d+, Q8_0 ×\d+$/);
  });

  it('a GGUF tensor with the wrong shape for the config names the file and the tensor', () => {
    const dir = diffusersWithout('q4-wrong', 'transformer');
    const tensors = ggufTensors(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), 'Q4_0')
      .map((t) => (t.name === 'txt_in.weight' ? { ...t, shape: [32, 64], data: encodeRows('Q4_0', new Float32Array(32 * 64).fill(0.25), 32, 64) } : t));
    writeGguf(path.join(dir, 'transformer', 'flux1-dev-Q4_0.gguf'), { tensors });
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(/^transformer\/flux1-dev-Q4_0\.gguf: tensor context_embedder\.weight has shape \[32,64\], transformer\/config\.json implies \[32,32\]/);
    // A truncated download is named too.
    const file = path.join(dir, 'transformer', 'flux1-dev-Q4_0.gguf');
    writeFileSync(file, readFileSync(file).subarray(0, 4000));
    expect(() => loadCheckpoint(dir)).toThrow(/^transformer\/flux1-dev-Q4_0\.gguf: .*truncated/);
  });

  it("a llama.cpp T5 encoder GGUF (t5-v1_1-xxl-encoder-Q8_0.gguf) under transformers' names, config from its shapes", () => {
    const dir = diffusersWithout('t5-gguf', 'text_encoder_2');
    rmSync(path.join(dir, 'text_encoder_2'), { recursive: true });
    const rename = (n: string) => t5HfToGgufName(n) ?? n;
    writeGguf(path.join(dir, 't5-v1_1-xxl-encoder-Q8_0.gguf'), { metadata: { 'general.architecture': 't5encoder' }, tensors: ggufTensors(fixture('tiny-flux-dev', 'text_encoder_2', 'model.safetensors'), 'Q8_0', rename) });
    const c = loadCheckpoint(dir).component('text_encoder_2');
    const ref = loadCheckpoint(fixture('tiny-flux-dev')).component('text_encoder_2');
    expect(c.weights.names().sort()).toEqual(ref.weights.names().sort());
    for (const k of ['d_model', 'num_heads', 'd_kv', 'd_ff', 'num_layers', 'is_gated_act']) expect(c.config[k], k).toEqual(ref.config[k]);
    expect(c.weights.source('encoder.block.1.layer.1.DenseReluDense.wi_1.weight').encoded?.format).toBe('Q8_0');
    expect(c.weights.info('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight').shape).toEqual([32, 4]);
  });
});
