import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { ClipTextEncoder } from '../../src/engine/graphs/clip-encoder.ts';
import { openTransformer } from '../../src/engine/graphs/flux-transformer-session.ts';
import { T5TextEncoder } from '../../src/engine/graphs/t5-encoder.ts';
import { VaeCodec } from '../../src/engine/graphs/vae-codec.ts';
import { gaussian, latentImageIds, textIds } from '../../src/engine/noise.ts';
import { flowMatchSchedule, loadSchedulerConfig } from '../../src/engine/scheduler.ts';
import { makeTinyModel, resolveTokenizerSources } from '../../src/engine/tiny-model/make.ts';
import { loadClipTokenizer } from '../../src/engine/tokenizers/clip.ts';
import { loadT5Tokenizer } from '../../src/engine/tokenizers/t5.ts';
import { SafetensorsFile } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

const cpu = { executionProvider: 'cpu' as const, threads: 2 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-tiny-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const tokenizers = fixture('tokenizers');

const WEIGHT_FILES = [
  'transformer/diffusion_pytorch_model.safetensors',
  'text_encoder/model.safetensors',
  'text_encoder_2/model.safetensors',
  'vae/diffusion_pytorch_model.safetensors',
];

function header(file: string): Record<string, { dtype: string; shape: number[] }> {
  const f = new SafetensorsFile(file);
  return Object.fromEntries(f.names().sort().map((n) => [n, { dtype: f.info(n).dtype, shape: f.info(n).shape }]));
}

describe('make-tiny-model', () => {
  const dev = path.join(tmp, 'dev');
  const made = makeTinyModel({ out: dev, preset: 'tiny', variant: 'dev', seed: 0, tokenizers });

  it('writes the diffusers layout with the fixture checkpoint\'s exact key names, shapes and bf16 dtype', () => {
    for (const f of WEIGHT_FILES) expect(header(path.join(dev, f)), f).toEqual(header(fixture('tiny-flux-dev', f)));
    for (const f of ['model_index.json', 'transformer/config.json', 'vae/config.json', 'scheduler/scheduler_config.json']) {
      const ours = JSON.parse(fs.readFileSync(path.join(dev, f), 'utf8')) as Record<string, unknown>;
      const theirs = JSON.parse(fs.readFileSync(fixture('tiny-flux-dev', f), 'utf8')) as Record<string, unknown>;
      expect(ours, f).toMatchObject(theirs);
    }
    expect(made.components.map((c) => c.tensors)).toEqual([112, 36, 21, 176]);
  });

  it('loads with the checkpoint loader (shapes checked) and every component runs to finite outputs', async () => {
    const ck = loadCheckpoint(dev);
    expect(ck.variant).toBe('dev');
    const tr = await openTransformer(ck, cpu);
    const out = await tr.run({
      hidden_states: gaussian(1, [1, 16, 64]),
      encoder_hidden_states: gaussian(2, [1, 512, 32]),
      pooled_projections: gaussian(3, [1, 16]),
      timestep: new Float32Array([0.75]),
      guidance: new Float32Array([3.5]),
      img_ids: latentImageIds(4, 4),
      txt_ids: textIds(512),
    });
    await tr.release();
    const sample = out.sample!.data as Float32Array;
    expect(sample).toHaveLength(16 * 64);
    expect(sample.every(Number.isFinite)).toBe(true);
    expect(sample.some((v) => v !== 0)).toBe(true);

    const clip = await ClipTextEncoder.create(ck.component('text_encoder'), cpu);
    const ids = loadClipTokenizer(ck.assetFolder('tokenizer')).inputIds('a red apple');
    expect((await clip.encode([ids])).pooled.every(Number.isFinite)).toBe(true);
    await clip.release();
    const t5 = new T5TextEncoder(ck.component('text_encoder_2'), cpu);
    const t5ids = loadT5Tokenizer(ck.assetFolder('tokenizer_2')).inputIds('a red apple', 512);
    expect((await t5.encode([t5ids], 512)).lastHiddenState.every(Number.isFinite)).toBe(true);
    await t5.release();
    const vae = new VaeCodec(ck.component('vae'), cpu);
    expect((await vae.decode({ data: gaussian(4, [1, 16, 8, 8]), shape: [1, 16, 8, 8] })).data.every(Number.isFinite)).toBe(true);
    await vae.release();
  });

  it('is deterministic in the seed, and the seed matters', () => {
    const again = path.join(tmp, 'again');
    const other = path.join(tmp, 'other');
    makeTinyModel({ out: again, preset: 'tiny', variant: 'dev', seed: 0, tokenizers });
    makeTinyModel({ out: other, preset: 'tiny', variant: 'dev', seed: 1, tokenizers });
    for (const f of WEIGHT_FILES) {
      expect(fs.readFileSync(path.join(again, f)).equals(fs.readFileSync(path.join(dev, f))), f).toBe(true);
      expect(fs.readFileSync(path.join(other, f)).equals(fs.readFileSync(path.join(dev, f))), f).toBe(false);
    }
  });

  it('initialises like the fixtures: norm scales near 1, biases small, weights ~ 1/√fan_in', () => {
    const ck = loadCheckpoint(dev);
    const w = ck.transformerWeights();
    const stats = (name: string) => {
      const v = w.readFloat32(name);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
      return { mean, std };
    };
    const ff = stats('transformer_blocks.0.ff.net.0.proj.weight'); // [128, 32]: std 1/√32
    expect(ff.std).toBeGreaterThan(0.8 / Math.sqrt(32));
    expect(ff.std).toBeLessThan(1.2 / Math.sqrt(32));
    expect(Math.abs(stats('transformer_blocks.0.attn.norm_q.weight').mean - 1)).toBeLessThan(0.1);
    expect(stats('transformer_blocks.0.ff.net.0.proj.bias').std).toBeLessThan(0.1);
  });

  it('schnell variant: no guidance embedder, static-shift scheduler', () => {
    const out = path.join(tmp, 'schnell');
    const r = makeTinyModel({ out, preset: 'tiny', variant: 'schnell', seed: 0, tokenizers });
    expect(r.components[0]!.tensors).toBe(108);
    const ck = loadCheckpoint(out);
    expect(ck.variant).toBe('schnell');
    expect(Array.from(flowMatchSchedule(loadSchedulerConfig(out), 4, 4096).sigmas)).toEqual([1, 0.75, 0.5, 0.25, 0]);
    expect(header(path.join(out, WEIGHT_FILES[0]!))).toEqual(header(fixture('tiny-flux-schnell', WEIGHT_FILES[0]!)));
  });

  it('accepts a FLUX checkpoint folder as the tokenizer source; explains what is missing otherwise', () => {
    expect(resolveTokenizerSources(dev)).toEqual({ clip: path.join(dev, 'tokenizer'), t5: path.join(dev, 'tokenizer_2') });
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    expect(() => resolveTokenizerSources(empty)).toThrow(/holds neither tokenizer\/ \+ tokenizer_2\/.*--tokenizers <dir>/s);
    fs.mkdirSync(path.join(empty, 'tokenizer'));
    expect(() => resolveTokenizerSources(empty)).toThrow(/tokenizer files missing: .*tokenizer\/vocab\.json/);
    expect(() => makeTinyModel({ out: dev, preset: 'tiny', variant: 'dev', seed: 0, tokenizers })).toThrow(/is not empty; .*--force/);
  });
});
