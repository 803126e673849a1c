import {
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { buildTransformerGraph } from '../../src/engine/graphs/transformer.ts';
import { decodeModel } from '../../src/engine/onnx/index.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';
import { sample } from './checkpoint-support.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A writable copy of a fixture checkpoint (only the parts a test needs). */
function copyModel(name: string, parts = ['model_index.json', 'transformer']): string {
  const dir = mkdtempSync(path.join(tmp, `${name}-`));
  for (const p of parts) cpSync(fixture(name, p), path.join(dir, p), { recursive: true });
  return dir;
}

function editJson(file: string, edit: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(j);
  writeFileSync(file, JSON.stringify(j));
}

describe('loading FLUX checkpoints', () => {
  it('detects dev and schnell and checks every component against its config', () => {
    const dev = loadCheckpoint(fixture('tiny-flux-dev'));
    expect([dev.layout, dev.variant]).toEqual(['diffusers', 'dev']);
    expect(dev.transformerWeights().names()).toHaveLength(112);
    expect(dev.component('text_encoder').className).toBe('CLIPTextModel');
    expect(dev.component('text_encoder_2').weights.names()).toHaveLength(21);
    expect(dev.component('vae').weights.info('decoder.conv_in.weight').shape).toEqual([64, 16, 3, 3]);
    expect(dev.schedulerConfig().use_dynamic_shifting).toBe(true);
    const schnell = loadCheckpoint(fixture('tiny-flux-schnell'));
    expect(schnell.variant).toBe('schnell');
    expect(schnell.transformerWeights().has('time_text_embed.guidance_embedder.linear_1.weight')).toBe(false);
  });

  it('maps the BFL single file to diffusers names and shapes', () => {
    const bfl = loadCheckpoint(fixture('tiny-flux-dev-bfl'));
    expect([bfl.layout, bfl.variant]).toEqual(['single-files', 'dev']);
    expect(bfl.transformerConfig).toEqual(loadCheckpoint(fixture('tiny-flux-dev')).transformerConfig);
    const w = bfl.transformerWeights();
    const ref = loadCheckpoint(fixture('tiny-flux-dev')).transformerWeights();
    expect(w.names().sort()).toEqual(ref.names().sort());
    // Split rows of fused qkv / linear1, and the swapped final modulation, must equal diffusers' tensors.
    for (const n of [
      'transformer_blocks.1.attn.add_v_proj.weight',
      'single_transformer_blocks.0.proj_mlp.bias',
      'norm_out.linear.weight',
    ]) {
      expect(w.readFloat32(n), n).toEqual(ref.readFloat32(n));
    }
    // ae.safetensors beside it is the VAE; there is no text encoder in that folder.
    expect(bfl.component('vae').weights.names()).toHaveLength(176);
    expect(() => bfl.component('text_encoder')).toThrow(
      /has no CLIP text encoder: no text_encoder\/ folder, and none of its 2 weights files \(ae\.safetensors, flux\.safetensors\) holds one/,
    );
  });

  it('reads a Hugging Face cache snapshot (symlinks into blobs/) through real paths, with the same output', async () => {
    const repo = path.join(tmp, 'models--black-forest-labs--FLUX.1-dev');
    const snap = path.join(repo, 'snapshots', 'abc123');
    mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    mkdirSync(path.join(repo, 'refs'));
    writeFileSync(path.join(repo, 'refs', 'main'), 'abc123\n');
    let n = 0;
    for (const rel of [
      'model_index.json',
      'transformer/config.json',
      'transformer/diffusion_pytorch_model.safetensors',
    ]) {
      const blob = path.join(repo, 'blobs', `blob${n++}`);
      copyFileSync(fixture('tiny-flux-dev', rel), blob);
      mkdirSync(path.dirname(path.join(snap, rel)), { recursive: true });
      symlinkSync(path.relative(path.dirname(path.join(snap, rel)), blob), path.join(snap, rel));
    }
    // The repo folder resolves through refs/main; the graph points at blobs/ without '..'.
    const ck = loadCheckpoint(repo);
    const g = buildTransformerGraph(ck.transformerConfig, ck.transformerWeights());
    expect(g.externalDataFolder()).toBe(realpathSync(path.join(repo, 'blobs')));
    const locations = decodeModel(g.toBytes())
      .graph.initializer.flatMap((t) => t.external_data ?? [])
      .filter((e) => e.key === 'location');
    expect(new Set(locations.map((e) => e.value))).toEqual(new Set(['blob2']));
    expect(await sample(snap)).toEqual(await sample(fixture('tiny-flux-dev')));
  });

  it('reads a sharded transformer (index + shards) with the same output', async () => {
    const dir = copyModel('tiny-flux-dev');
    const single = path.join(dir, 'transformer', 'diffusion_pytorch_model.safetensors');
    const src = new SafetensorsFile(single);
    const names = src.names();
    const map: Record<string, string> = {};
    for (const [i, part] of [names.slice(0, 50), names.slice(50)].entries()) {
      const shard = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(path.join(dir, 'transformer', shard), Object.fromEntries(part.map((k) => [k, src.read(k)])));
      for (const k of part) map[k] = shard;
    }
    writeFileSync(`${single}.index.json`, JSON.stringify({ metadata: { total_size: 0 }, weight_map: map }));
    rmSync(single);
    expect(await sample(dir)).toEqual(await sample(fixture('tiny-flux-dev')));
    // …and a missing shard is named.
    rmSync(path.join(dir, 'transformer', 'diffusion_pytorch_model-00002-of-00002.safetensors'));
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(
      /lists shard diffusion_pytorch_model-00002-of-00002\.safetensors .* but transformer\/diffusion_pytorch_model-00002-of-00002\.safetensors is missing/,
    );
  });
});

describe('bad checkpoints give errors that name the file and the tensor', () => {
  it('a config that disagrees with the weights', () => {
    const dir = copyModel('tiny-flux-dev');
    editJson(path.join(dir, 'transformer', 'config.json'), (j) => (j.joint_attention_dim = 16));
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(
      'transformer/diffusion_pytorch_model.safetensors: tensor context_embedder.weight has shape [32,32], transformer/config.json implies [32,16]',
    );
  });

  it('weights with a wrong shape', () => {
    const dir = copyModel('tiny-flux-dev');
    const file = path.join(dir, 'transformer', 'diffusion_pytorch_model.safetensors');
    const src = new SafetensorsFile(file);
    const tensors = Object.fromEntries(src.names().map((k) => [k, src.read(k)]));
    const q = tensors['transformer_blocks.0.attn.to_q.weight']!;
    tensors['transformer_blocks.0.attn.to_q.weight'] = {
      ...q,
      shape: [32, 16],
      data: (q.data as Uint16Array).subarray(0, 512),
    };
    writeSafetensors(file, tensors);
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(
      'transformer/diffusion_pytorch_model.safetensors: tensor transformer_blocks.0.attn.to_q.weight has shape [32,16], transformer/config.json implies [32,32]',
    );
  });

  it('a schnell config on dev weights (guidance embedder present but not configured)', () => {
    const dir = copyModel('tiny-flux-dev');
    editJson(path.join(dir, 'transformer', 'config.json'), (j) => (j.guidance_embeds = false));
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(
      /tensors time_text_embed\.guidance_embedder\.[\w.]+, .* are not implied by transformer\/config\.json/,
    );
  });

  it('a VAE config that disagrees with its weights', () => {
    const dir = copyModel('tiny-flux-dev', ['model_index.json', 'transformer', 'vae']);
    editJson(path.join(dir, 'vae', 'config.json'), (j) => (j.latent_channels = 4));
    expect(() => loadCheckpoint(dir).component('vae')).toThrow(
      /^vae\/diffusion_pytorch_model\.safetensors: tensor encoder\.conv_out\.weight has shape \[32,64,3,3\], vae\/config\.json implies \[8,64,3,3\]/,
    );
  });

  it('a truncated weights file in the checkpoint', () => {
    const dir = copyModel('tiny-flux-dev');
    const file = path.join(dir, 'transformer', 'diffusion_pytorch_model.safetensors');
    writeFileSync(file, readFileSync(file).subarray(0, 64));
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(
      /^transformer\/diffusion_pytorch_model\.safetensors: safetensors header length \d+ runs past the end of the 64-byte file/,
    );
  });

  it('missing or unknown architecture', () => {
    const empty = mkdtempSync(path.join(tmp, 'empty-'));
    expect(() => loadCheckpoint(empty)).toThrow(/is not a FLUX\.1 checkpoint: no model_index\.json/);
    expect(() => loadCheckpoint(path.join(tmp, 'nope'))).toThrow(/does not exist/);
    const sd = copyModel('tiny-flux-dev');
    editJson(path.join(sd, 'model_index.json'), (j) => (j._class_name = 'StableDiffusionXLPipeline'));
    expect(() => loadCheckpoint(sd)).toThrow(/pipeline class StableDiffusionXLPipeline is not supported/);
    const sd3 = copyModel('tiny-flux-dev');
    editJson(path.join(sd3, 'model_index.json'), (j) => (j.transformer = ['diffusers', 'SD3Transformer2DModel']));
    expect(() => loadCheckpoint(sd3)).toThrow(/transformer is a SD3Transformer2DModel, which scenewright cannot run/);
    const noTe = copyModel('tiny-flux-dev');
    expect(() => loadCheckpoint(noTe).component('text_encoder')).toThrow(/text_encoder\/ folder is missing/);
  });

  it('a BFL file whose RoPE axes cannot be known', () => {
    const dir = mkdtempSync(path.join(tmp, 'bfl-'));
    copyFileSync(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), path.join(dir, 'flux.safetensors'));
    expect(() => loadCheckpoint(dir)).toThrow(
      /head size 16 is not FLUX\.1's 128, so the RoPE axes are unknown; put a params\.json/,
    );
  });
});
