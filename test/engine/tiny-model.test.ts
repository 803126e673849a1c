import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { ClipTextEncoder } from '../../src/engine/graphs/clip-encoder.ts';
import { openTransformer } from '../../src/engine/graphs/flux-transformer-session.ts';
import { T5TextEncoder } from '../../src/engine/graphs/t5-encoder.ts';
import { VaeCodec } from '../../src/engine/graphs/vae-codec.ts';
import { gaussian } from '../../src/engine/noise.ts';
import { latentImageIds, textIds } from '../../src/engine/latents.ts';
import { flowMatchSchedule, loadSchedulerConfig } from '../../src/engine/scheduler.ts';
import { autoencoderKLShapes, clipTextShapes, t5EncoderShapes } from '../../src/engine/checkpoint/component-specs.ts';
import { fluxConfigFromDiffusers, fluxTransformerShapes } from '../../src/engine/checkpoint/flux-config.ts';
import { makeTinyModel, resolveTokenizerSources, writeTinyModel } from '../../src/engine/tiny-model/make.ts';
import { presetConfigs } from '../../src/engine/tiny-model/presets.ts';
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
  return Object.fromEntries(
    f
      .names()
      .sort()
      .map((n) => [n, { dtype: f.info(n).dtype, shape: f.info(n).shape }]),
  );
}

describe('make-tiny-model', () => {
  const dev = path.join(tmp, 'dev');
  const made = makeTinyModel({ out: dev, preset: 'tiny', variant: 'dev', seed: 0, tokenizers });

  it("writes the diffusers layout with the fixture checkpoint's exact key names, shapes and bf16 dtype", () => {
    for (const f of WEIGHT_FILES) expect(header(path.join(dev, f)), f).toEqual(header(fixture('tiny-flux-dev', f)));
    for (const f of [
      'model_index.json',
      'transformer/config.json',
      'vae/config.json',
      'scheduler/scheduler_config.json',
    ]) {
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
    expect(
      (await vae.decode({ data: gaussian(4, [1, 16, 8, 8]), shape: [1, 16, 8, 8] })).data.every(Number.isFinite),
    ).toBe(true);
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
    expect(resolveTokenizerSources(dev)).toEqual({
      clip: path.join(dev, 'tokenizer'),
      t5: path.join(dev, 'tokenizer_2'),
    });
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    expect(() => resolveTokenizerSources(empty)).toThrow(
      /holds neither tokenizer\/ \+ tokenizer_2\/.*--tokenizers <dir>/s,
    );
    fs.mkdirSync(path.join(empty, 'tokenizer'));
    expect(() => resolveTokenizerSources(empty)).toThrow(/tokenizer files missing: .*tokenizer\/vocab\.json/);
    expect(() => makeTinyModel({ out: dev, preset: 'tiny', variant: 'dev', seed: 0, tokenizers })).toThrow(
      /is not empty; .*--force/,
    );
  });
});

describe('make-tiny-model writer', () => {
  const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

  it('writes the tiny preset bit-identical to the files it wrote before the writer was cut into pieces', () => {
    const out = path.join(tmp, 'golden');
    makeTinyModel({ out, preset: 'tiny', variant: 'dev', seed: 0, tokenizers, pieceValues: 998 });
    // sha256 of `make-tiny-model --preset tiny --seed 0` at commit 99a8b29 (one whole-tensor draw at a time).
    expect(WEIGHT_FILES.map((f) => sha(path.join(out, f)))).toEqual([
      'c6f0f32824b38552fe335cab7fa21979084163c86142b6d48f2d93368d82f4e7',
      '18e23e0e60039cd48bc6327851e04292f4ed07f10ea55f885a247dfa6c6cdc0d',
      '2a65b5a16111a6453000261bcc531fa9a92764c58013203c3c58614504459b6c',
      '743752ac5cda64c48f738feb884b0cebab7c508855cae27cf221898665843f28',
    ]);
  });

  it('draws pieces on worker threads with the same bytes as on one thread', async () => {
    const one = path.join(tmp, 'one-thread');
    const pool = path.join(tmp, 'two-threads');
    makeTinyModel({ out: one, preset: 'tiny', variant: 'schnell', seed: 3, tokenizers });
    const lines: string[] = [];
    // Odd-sized tensors cut into 1000-value pieces, handed out to 2 threads in whatever order they finish.
    const r = await writeTinyModel({
      out: pool,
      preset: 'tiny',
      variant: 'schnell',
      seed: 3,
      tokenizers,
      workers: 2,
      pieceValues: 1000,
      progress: (m) => lines.push(m),
    });
    for (const f of WEIGHT_FILES)
      expect(fs.readFileSync(path.join(pool, f)).equals(fs.readFileSync(path.join(one, f))), f).toBe(true);
    expect(r.components.map((c) => c.folder)).toEqual(['transformer', 'text_encoder', 'text_encoder_2', 'vae']);
    expect(lines.filter((l) => / tensors, .* M parameters/.test(l))).toHaveLength(4);
  });

  it("wide preset: FLUX.1's real width and head geometry with 1 double + 2 single blocks, small encoders that fit it", () => {
    const count = (shapes: Map<string, number[]>) =>
      [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
    for (const variant of ['dev', 'schnell'] as const) {
      const c = presetConfigs('wide', variant);
      const cfg = fluxConfigFromDiffusers(c.transformer, 'transformer/config.json');
      expect(cfg).toMatchObject({
        heads: 24,
        headDim: 128,
        inner: 3072,
        mlp: 12288,
        axesDimsRope: [16, 56, 56],
        jointAttentionDim: 4096,
        pooledProjectionDim: 768,
        numLayers: 1,
        numSingleLayers: 2,
        inChannels: 64,
        guidanceEmbeds: variant === 'dev',
      });
      const shapes = fluxTransformerShapes(cfg).shapes;
      expect(shapes.get('single_transformer_blocks.1.proj_out.weight')).toEqual([3072, 3072 + 12288]);
      expect(shapes.get('context_embedder.weight')).toEqual([3072, 4096]);
      // 0.69 G (dev) / 0.68 G (schnell) parameters: 1.37 / 1.35 GB of bf16.
      expect(count(shapes)).toBe(variant === 'dev' ? 687_139_904 : 676_910_144);
      // The encoders only have to fit the transformer's interfaces: T5 as wide as joint_attention_dim, CLIP's
      // pooled output as wide as pooled_projection_dim.
      expect(c.textEncoder2).toMatchObject({ d_model: 4096, num_layers: 1, num_heads: 4, d_kv: 64, d_ff: 1024 });
      expect(c.textEncoder).toMatchObject({ hidden_size: 768, num_hidden_layers: 1 });
      expect(count(t5EncoderShapes(c.textEncoder2, 't5').shapes)).toBe(148_385_920);
      expect(count(clipTextShapes(c.textEncoder, 'clip').shapes)).toBe(45_093_888);
      expect(count(autoencoderKLShapes(c.vae, 'vae').shapes)).toBe(
        count(autoencoderKLShapes(presetConfigs('tiny', variant).vae, 'vae').shapes),
      );
    }
  });
});
