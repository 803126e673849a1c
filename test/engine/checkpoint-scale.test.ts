import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { autoencoderKLShapes, clipTextShapes, t5EncoderShapes } from '../../src/engine/checkpoint/component-specs.ts';
import { SafetensorsFile, writeSafetensors, type HostTensor } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

/**
 * The single-file mappings at FLUX.1's real sizes, on header-only files: the header is real, the data section is a
 * hole (ftruncate), so a 12 GB fp8 transformer costs no disk and no reading. And the BFL autoencoder names written
 * by this test's own inverse of the diffusers names, checked against the fixture's ae.safetensors (made by the
 * fixture scripts' inverse, verified against diffusers' convert_ldm_vae_checkpoint).
 */

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-scale-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const BYTES: Record<string, number> = { F8_E4M3: 1, BF16: 2, F16: 2, F32: 4 };

/** A safetensors file whose data is a hole: only the header is written. */
function writeHeaderOnly(file: string, tensors: [string, string, number[]][]): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, dtype, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1) * BYTES[dtype]!;
    header[name] = { dtype, shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, Buffer.concat([len, Buffer.from(json)]));
    ftruncateSync(fd, 8 + json.length + offset);
  } finally {
    closeSync(fd);
  }
}

/** FLUX.1-dev's transformer in BFL names (flux1-dev-fp8.safetensors: linear weights fp8, the rest BF16). */
function fluxDevBfl(): [string, string, number[]][] {
  const D = 3072;
  const mlp = 4 * D;
  const out: [string, string, number[]][] = [];
  const lin = (name: string, o: number, i: number) =>
    out.push([`${name}.weight`, 'F8_E4M3', [o, i]], [`${name}.bias`, 'BF16', [o]]);
  const norms = (p: string) =>
    out.push([`${p}.query_norm.scale`, 'BF16', [128]], [`${p}.key_norm.scale`, 'BF16', [128]]);
  lin('img_in', D, 64);
  lin('txt_in', D, 4096);
  for (const [p, inp] of [
    ['time_in', 256],
    ['vector_in', 768],
    ['guidance_in', 256],
  ] as const) {
    lin(`${p}.in_layer`, D, inp);
    lin(`${p}.out_layer`, D, D);
  }
  for (let i = 0; i < 19; i++) {
    for (const s of ['img', 'txt']) {
      const b = `double_blocks.${i}.${s}`;
      lin(`${b}_mod.lin`, 6 * D, D);
      lin(`${b}_attn.qkv`, 3 * D, D);
      norms(`${b}_attn.norm`);
      lin(`${b}_attn.proj`, D, D);
      lin(`${b}_mlp.0`, mlp, D);
      lin(`${b}_mlp.2`, D, mlp);
    }
  }
  for (let i = 0; i < 38; i++) {
    lin(`single_blocks.${i}.linear1`, 3 * D + mlp, D);
    lin(`single_blocks.${i}.linear2`, D, D + mlp);
    norms(`single_blocks.${i}.norm`);
    lin(`single_blocks.${i}.modulation.lin`, 3 * D, D);
  }
  lin('final_layer.linear', 64, D);
  lin('final_layer.adaLN_modulation.1', 2 * D, D);
  return out;
}

/** diffusers AutoencoderKL name → BFL/LDM name and shape (this test's own inverse; `levels` = number of blocks). */
function ldmName(name: string, shape: number[], levels: number): [string, number[]] {
  let n = name
    .replace(/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\./, 'encoder.down.$1.block.$2.')
    .replace(/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\./, 'encoder.down.$1.downsample.')
    .replace(
      /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\./,
      (_, i: string, j: string) => `decoder.up.${levels - 1 - Number(i)}.block.${j}.`,
    )
    .replace(
      /^decoder\.up_blocks\.(\d+)\.upsamplers\.0\./,
      (_, i: string) => `decoder.up.${levels - 1 - Number(i)}.upsample.`,
    )
    .replace(/\.mid_block\.resnets\.(\d)\./, (_, k: string) => `.mid.block_${Number(k) + 1}.`)
    .replace('.conv_shortcut.', '.nin_shortcut.')
    .replace('.conv_norm_out.', '.norm_out.');
  const attn = /\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\./.exec(n);
  if (attn) {
    const to = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' }[attn[1]!]!;
    n = n.replace(attn[0], `.mid.attn_1.${to}.`);
    // diffusers' linears are BFL's 1×1 convolutions.
    if (to !== 'norm' && n.endsWith('.weight')) return [n, [...shape, 1, 1]];
  }
  return [n, shape];
}

describe('single files at FLUX.1 sizes', () => {
  it("flux1-dev-fp8.safetensors (BFL names, 12 GB of fp8): FLUX.1-dev's config, every tensor in place", () => {
    const dir = path.join(tmp, 'dev-fp8');
    mkdirSync(dir);
    const tensors = fluxDevBfl();
    writeHeaderOnly(path.join(dir, 'flux1-dev-fp8.safetensors'), tensors);
    const t0 = performance.now();
    const ck = loadCheckpoint(dir);
    const w = ck.transformerWeights();
    const ms = performance.now() - t0;
    expect(ck.transformerConfig).toEqual({
      inChannels: 64,
      outChannels: 64,
      numLayers: 19,
      numSingleLayers: 38,
      heads: 24,
      headDim: 128,
      inner: 3072,
      mlp: 12288,
      jointAttentionDim: 4096,
      pooledProjectionDim: 768,
      guidanceEmbeds: true,
      axesDimsRope: [16, 56, 56],
      ropeTheta: 10000,
    });
    // Splitting the fused tensors adds 8 names per double block (qkv → q, k, v twice) and 6 per single block.
    expect(w.names()).toHaveLength(tensors.length + 19 * 8 + 38 * 6);
    // A slice of a fused tensor is a byte range of the file: single block 37's MLP rows follow its q, k, v rows.
    const f = new SafetensorsFile(path.join(dir, 'flux1-dev-fp8.safetensors'));
    const l1 = f.source('single_blocks.37.linear1.weight').external!;
    expect(w.source('single_transformer_blocks.37.proj_mlp.weight').external).toEqual({
      file: l1.file,
      offset: l1.offset + 3 * 3072 * 3072,
      length: 12288 * 3072,
    });
    // Headers only: mapping FLUX.1-dev takes well under a second.
    expect(ms).toBeLessThan(2000);
  });

  it("ae.safetensors, clip_l.safetensors and t5xxl_fp8_e4m3fn.safetensors at FLUX.1's sizes: configs derived from shapes are FLUX.1's", () => {
    const dir = path.join(tmp, 'comfy');
    mkdirSync(dir);
    writeHeaderOnly(path.join(dir, 'flux1-dev-fp8.safetensors'), fluxDevBfl());
    const vaeCfg = {
      block_out_channels: [128, 256, 512, 512],
      layers_per_block: 2,
      latent_channels: 16,
      use_quant_conv: false,
      use_post_quant_conv: false,
    };
    writeHeaderOnly(
      path.join(dir, 'ae.safetensors'),
      [...autoencoderKLShapes(vaeCfg, 'FLUX.1 vae').shapes].map(([n, s]) => {
        const [name, shape] = ldmName(n, s, 4);
        return [name, 'BF16', shape] as [string, string, number[]];
      }),
    );
    // FLUX.1's text_encoder/config.json and text_encoder_2/config.json (sizes), as in the black-forest-labs repositories.
    const clipCfg = {
      vocab_size: 49408,
      hidden_size: 768,
      intermediate_size: 3072,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      max_position_embeddings: 77,
    };
    const t5Cfg = {
      vocab_size: 32128,
      d_model: 4096,
      d_kv: 64,
      num_heads: 64,
      d_ff: 10240,
      num_layers: 24,
      relative_attention_num_buckets: 32,
      is_gated_act: true,
    };
    const header = (spec: Map<string, number[]>, dtype: (n: string, s: number[]) => string) =>
      [...spec].map(([n, s]) => [n, dtype(n, s), s] as [string, string, number[]]);
    writeHeaderOnly(
      path.join(dir, 'clip_l.safetensors'),
      header(clipTextShapes(clipCfg, 'clip').shapes, () => 'F16'),
    );
    writeHeaderOnly(
      path.join(dir, 't5xxl_fp8_e4m3fn.safetensors'),
      header(t5EncoderShapes(t5Cfg, 't5').shapes, (n, s) =>
        s.length === 2 && n !== 'shared.weight' && !n.includes('relative_attention_bias') ? 'F8_E4M3' : 'F32',
      ),
    );
    const ck = loadCheckpoint(dir);
    const vae = ck.component('vae');
    expect(vae.config).toMatchObject({
      ...vaeCfg,
      norm_num_groups: 32,
      scaling_factor: 0.3611,
      shift_factor: 0.1159,
      in_channels: 3,
      out_channels: 3,
      mid_block_add_attention: true,
    });
    expect(vae.weights.info('decoder.up_blocks.0.resnets.2.conv2.weight').shape).toEqual([512, 512, 3, 3]);
    expect(vae.weights.info('decoder.up_blocks.3.resnets.0.conv_shortcut.weight').shape).toEqual([128, 256, 1, 1]);
    expect(ck.component('text_encoder').config).toMatchObject({
      ...clipCfg,
      hidden_act: 'quick_gelu',
      eos_token_id: 2,
    });
    expect(ck.component('text_encoder_2').config).toMatchObject({
      ...t5Cfg,
      feed_forward_proj: 'gated-gelu',
      relative_attention_max_distance: 128,
    });
    expect(ck.form?.('text_encoder_2').storage).toBe('F8_E4M3 ×168, F32 ×51');
  });

  it("this test's inverse of the mapping turns the diffusers tiny VAE into the fixture's ae.safetensors, byte for byte", () => {
    const src = new SafetensorsFile(fixture('tiny-flux-dev', 'vae', 'diffusion_pytorch_model.safetensors'));
    const ae = new SafetensorsFile(fixture('tiny-flux-dev-bfl', 'ae.safetensors'));
    const converted: Record<string, HostTensor> = {};
    for (const n of src.names()) {
      const t = src.read(n);
      const [name, shape] = ldmName(n, t.shape, 4);
      converted[name] = { ...t, shape };
    }
    const file = path.join(tmp, 'ae-from-diffusers.safetensors');
    writeSafetensors(file, converted);
    const mine = new SafetensorsFile(file);
    expect(mine.names().sort()).toEqual(ae.names().sort());
    for (const n of ae.names()) {
      expect(mine.info(n).shape, n).toEqual(ae.info(n).shape);
      expect(Buffer.from(mine.readBytes(n)).equals(Buffer.from(ae.readBytes(n))), n).toBe(true);
    }
  });
});
