import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { decodeRows } from '../../src/engine/weights/gguf/blocks.ts';
import { t5HfToGgufName } from '../../src/engine/weights/gguf/t5-names.ts';
import { encodeRows, writeGguf, type GgufTensorInput } from '../../src/engine/weights/gguf/writer.ts';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import { plainPlan } from '../../src/engine/pipeline/run-plan.ts';
import { SafetensorsFile, writeSafetensors, type HostTensor } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

/**
 * GGUF parts in model sets: a city96-style FLUX transformer (BFL key names, linear weights in a block format) and a
 * llama.cpp T5 encoder (its own tensor names), written here by the project's GGUF writer from the tiny fixtures.
 */

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-gguf-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Every tensor of a safetensors file as GGUF: 2-D weights whose rows are whole blocks in `format` (except those
 * `keep` names), the rest F32.
 */
function ggufTensors(
  file: string,
  format: 'Q8_0' | 'Q4_0',
  rename: (n: string) => string = (n) => n,
  keep: (n: string) => boolean = () => false,
): GgufTensorInput[] {
  const f = new SafetensorsFile(file);
  return f.names().map((n) => {
    const shape = f.info(n).shape;
    const values = f.readFloat32(n);
    const quant = shape.length === 2 && shape[1]! % 32 === 0 && n.endsWith('.weight') && !keep(n);
    const fmt = quant ? format : 'F32';
    return {
      name: rename(n),
      format: fmt,
      shape,
      data: encodeRows(fmt, values, quant ? shape[0]! : 1, values.length / (quant ? shape[0]! : 1)),
    };
  });
}

function diffusersWithout(name: string, part: string): string {
  const dir = path.join(tmp, name);
  cpSync(fixture('tiny-flux-dev'), dir, { recursive: true });
  for (const f of ['diffusion_pytorch_model.safetensors', 'model.safetensors'])
    rmSync(path.join(dir, part, f), { force: true });
  return dir;
}

describe('GGUF files in a model set', () => {
  it('a FLUX transformer in Q8_0 (BFL names) maps to diffusers names as encoded rows of the same bytes', () => {
    const dir = diffusersWithout('q8', 'transformer');
    const tensors = ggufTensors(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), 'Q8_0');
    writeGguf(path.join(dir, 'transformer', 'flux1-dev-Q8_0.gguf'), {
      metadata: { 'general.architecture': 'flux' },
      tensors,
    });
    const ck = loadCheckpoint(dir);
    expect(ck.transformerConfig).toEqual(loadCheckpoint(fixture('tiny-flux-dev')).transformerConfig);
    const w = ck.transformerWeights();
    expect(w.names()).toHaveLength(112);
    const src = w.source('transformer_blocks.0.attn.to_v.weight');
    expect(src.encoded?.format).toBe('Q8_0');
    expect(src.shape).toEqual([32, 32]);
    // The v rows of the fused qkv, decoded as ggml does, are what the mapped tensor decodes to.
    const qkv = tensors.find((t) => t.name === 'double_blocks.0.img_attn.qkv.weight')!;
    expect(w.readFloat32('transformer_blocks.0.attn.to_v.weight')).toEqual(
      decodeRows('Q8_0', qkv.data, 96, 32).subarray(64 * 32),
    );
    expect(ck.form?.('transformer')).toMatchObject({ file: 'transformer/flux1-dev-Q8_0.gguf', keys: 'bfl' });
    expect(ck.form?.('transformer').storage).toMatch(/^F32 ×\d+, Q8_0 ×\d+$/);
  });

  it('a GGUF tensor with the wrong shape for the config names the file and the tensor', () => {
    const dir = diffusersWithout('q4-wrong', 'transformer');
    const tensors = ggufTensors(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), 'Q4_0').map((t) =>
      t.name === 'txt_in.weight'
        ? { ...t, shape: [32, 64], data: encodeRows('Q4_0', new Float32Array(32 * 64).fill(0.25), 32, 64) }
        : t,
    );
    writeGguf(path.join(dir, 'transformer', 'flux1-dev-Q4_0.gguf'), { tensors });
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(
      /^transformer\/flux1-dev-Q4_0\.gguf: tensor context_embedder\.weight has shape \[32,64\], transformer\/config\.json implies \[32,32\]/,
    );
    // A truncated download is named too.
    const file = path.join(dir, 'transformer', 'flux1-dev-Q4_0.gguf');
    writeFileSync(file, readFileSync(file).subarray(0, 4000));
    expect(() => loadCheckpoint(dir)).toThrow(/^transformer\/flux1-dev-Q4_0\.gguf: .*truncated/);
  });

  it("a llama.cpp T5 encoder GGUF (t5-v1_1-xxl-encoder-Q8_0.gguf) under transformers' names, config from its shapes", () => {
    const dir = diffusersWithout('t5-gguf', 'text_encoder_2');
    rmSync(path.join(dir, 'text_encoder_2'), { recursive: true });
    const rename = (n: string) => t5HfToGgufName(n) ?? n;
    writeGguf(path.join(dir, 't5-v1_1-xxl-encoder-Q8_0.gguf'), {
      metadata: { 'general.architecture': 't5encoder' },
      tensors: ggufTensors(fixture('tiny-flux-dev', 'text_encoder_2', 'model.safetensors'), 'Q8_0', rename),
    });
    const c = loadCheckpoint(dir).component('text_encoder_2');
    const ref = loadCheckpoint(fixture('tiny-flux-dev')).component('text_encoder_2');
    expect(c.weights.names().sort()).toEqual(ref.weights.names().sort());
    for (const k of ['d_model', 'num_heads', 'd_kv', 'd_ff', 'num_layers', 'is_gated_act'])
      expect(c.config[k], k).toEqual(ref.config[k]);
    expect(c.weights.source('encoder.block.1.layer.1.DenseReluDense.wi_1.weight').encoded?.format).toBe('Q8_0');
    expect(c.weights.info('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight').shape).toEqual([
      32, 4,
    ]);
  });
});

describe('a folder of GGUF files paints', () => {
  it('Q8_0 transformer + Q8_0 T5 + ae + clip_l: the image of the same values decoded to F32 safetensors', async () => {
    const flux = ggufTensors(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), 'Q8_0');
    // The embedding table stays F32: the engine widens a quantized table to bf16 (weights/prepare.ts: only linears
    // run quantized), which rounds it; the linears run in MatMulNBits on exactly the decoded values.
    const t5 = ggufTensors(
      fixture('tiny-flux-dev', 'text_encoder_2', 'model.safetensors'),
      'Q8_0',
      (n) => t5HfToGgufName(n) ?? n,
      (n) => n === 'shared.weight',
    );
    /** The same tensors as ggml decodes them, as F32 safetensors (T5 back under transformers' names). */
    const decoded = (ts: GgufTensorInput[], name: (n: string) => string = (n) => n): Record<string, HostTensor> =>
      Object.fromEntries(
        ts.map((t) => {
          const rows = t.format === 'F32' ? 1 : t.shape[0]!;
          const values = decodeRows(
            t.format as 'Q8_0' | 'F32',
            t.data,
            rows,
            t.shape.reduce((a, b) => a * b, 1) / rows,
          );
          return [name(t.name), { dtype: 'float32', shape: t.shape, data: values }];
        }),
      );
    const t5Names = new Map(
      new SafetensorsFile(fixture('tiny-flux-dev', 'text_encoder_2', 'model.safetensors'))
        .names()
        .map((n) => [t5HfToGgufName(n) ?? n, n]),
    );
    const set = (name: string, write: (dir: string) => void) => {
      const dir = path.join(tmp, name);
      mkdirSync(path.join(dir, 'text_encoder'), { recursive: true });
      for (const f of ['ae.safetensors', 'params.json'])
        copyFileSync(fixture('tiny-flux-dev-bfl', f), path.join(dir, f));
      for (const f of ['model.safetensors', 'config.json'])
        copyFileSync(
          fixture('tiny-flux-dev', 'text_encoder', f),
          path.join(dir, 'text_encoder', f === 'config.json' ? f : 'clip_l.safetensors'),
        );
      for (const t of ['tokenizer', 'tokenizer_2'])
        cpSync(fixture('tiny-flux-dev', t), path.join(dir, t), { recursive: true });
      write(dir);
      return dir;
    };
    const gguf = set('paints-gguf', (dir) => {
      writeGguf(path.join(dir, 'flux1-dev-Q8_0.gguf'), { tensors: flux });
      writeGguf(path.join(dir, 't5-v1_1-xxl-encoder-Q8_0.gguf'), { tensors: t5 });
    });
    const f32 = set('paints-f32', (dir) => {
      writeSafetensors(path.join(dir, 'flux1-dev.safetensors'), decoded(flux));
      writeSafetensors(
        path.join(dir, 't5xxl_fp32.safetensors'),
        decoded(t5, (n) => t5Names.get(n)!),
      );
    });
    const open = (modelDir: string) =>
      Engine.open({
        modelDir,
        runtime: { executionProvider: 'cpu', threads: 2 },
        memoryCheck: false,
        weightsCacheDir: path.join(tmp, 'cache'),
      });
    const [a, b] = [open(gguf), open(f32)];
    try {
      const plan = plainPlan('a red apple on a wooden table', {
        width: 128,
        height: 128,
        steps: 2,
        guidance: 3.5,
        seed: 7,
        textLength: 512,
      });
      const [ia, ib] = [(await a.paint(plan)).image.data, (await b.paint(plan)).image.data];
      // Only float32 rounding may differ: ORT's prepacked MatMulNBits kernel sums in another order than the SGEMM of
      // the decoded F32 weights (bit-exact before prepacking). Measured 2.9e-6 on an image up to 3.97 after 2 steps;
      // a wrong name, row slice or scale moves it by O(0.1).
      let diff = 0;
      for (let i = 0; i < ia.length; i++) diff = Math.max(diff, Math.abs(ia[i]! - ib[i]!));
      expect(diff).toBeLessThan(2e-5);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
