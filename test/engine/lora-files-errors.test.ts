import { mkdtempSync, rmSync, statSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FluxTransformerConfig } from '../../src/engine/checkpoint/flux-config.ts';
import { LoraFileError, readLoraFile } from '../../src/engine/lora/files/read.ts';
import { fluxLoraTarget } from '../../src/engine/lora/files/target.ts';
import { writeTestLora } from '../../src/engine/tiny-model/lora.ts';
import { writeSafetensors, type HostTensor } from '../../src/engine/weights/safetensors.ts';
import { LORA_LIMITS } from '../../src/rag/params.ts';
import { tinyFluxConfig } from '../support/fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-lora-bad-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string) => path.join(tmp, name);

const config: FluxTransformerConfig = tinyFluxConfig();
const target = fluxLoraTarget(config, 'tiny-flux-dev');
const D = config.inner;
const zeros = (shape: number[]): HostTensor => ({
  dtype: 'float32',
  shape,
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01),
});

function write(name: string, tensors: Record<string, HostTensor>, metadata?: Record<string, string>): string {
  const p = file(name);
  writeSafetensors(p, tensors, metadata);
  return p;
}

/** Reading `p` fails with a LoraFileError whose message contains every fragment. */
async function refused(p: string, ...fragments: (string | RegExp)[]): Promise<string> {
  const err = await readLoraFile(p, target).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LoraFileError);
  const message = (err as Error).message;
  for (const f of fragments) expect(message).toMatch(f);
  return message;
}

describe('LoRA files: bad input is refused with a message that says what and what to do', () => {
  it('an SDXL LoRA (kohya SGM keys, 2048-wide cross-attention) names Stable Diffusion XL', async () => {
    const p = write('sdxl.safetensors', {
      'lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight': zeros([4, 2048]),
      'lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight': zeros([640, 4]),
      'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': zeros([4, 768]),
    });
    await refused(p, p, 'is a LoRA for Stable Diffusion XL, not FLUX', 'lora_unet_input_blocks_4_1');
  });

  it('an SD 1.5 LoRA (diffusers-style kohya keys, 768-wide cross-attention) names Stable Diffusion 1.5', async () => {
    const p = write('sd15.safetensors', {
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight': zeros([4, 768]),
      'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight': zeros([320, 4]),
      'lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight': zeros([4, 768]),
    });
    await refused(p, 'is a LoRA for Stable Diffusion 1.5, not FLUX');
  });

  it('a diffusers SD LoRA (unet. keys) and an SD3 one are refused as such', async () => {
    const sd = write('unet.safetensors', {
      'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight': zeros([4, 640]),
      'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight': zeros([640, 4]),
    });
    await refused(sd, 'Stable Diffusion', 'not FLUX');
    const sd3 = write('sd3.safetensors', {
      'lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight': zeros([4, 1536]),
      'lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight': zeros([4608, 4]),
    });
    await refused(sd3, 'Stable Diffusion 3, not FLUX');
  });

  it('a FLUX LoRA of another width names the tensor, both shapes and the file', async () => {
    const wider = { ...config, heads: 4, inner: 4 * config.headDim, mlp: 16 * config.headDim };
    const p = file('wider.safetensors');
    writeTestLora(p, { config: wider, layout: 'kohya', rank: 4, layers: 'attention' });
    const msg = await refused(
      p,
      p,
      'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight',
      '[4, 64]',
      `takes ${D} inputs`,
      `[4, ${D}]`,
      'another width',
    );
    expect(msg).toContain('tiny-flux-dev');
    const full = write('full-width.safetensors', {
      'lora_unet_single_blocks_0_linear2.lora_down.weight': zeros([2, 3072 + 12288]),
      'lora_unet_single_blocks_0_linear2.lora_up.weight': zeros([3072, 2]),
      'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': zeros([2, 3072]),
      'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight': zeros([3072, 2]),
    });
    await refused(full, 'lora_unet_single_blocks_0_linear2.lora_down.weight', "full-size FLUX.1's, hidden size 3072");
  });

  it('an img_in LoRA with more input channels names the FLUX variant it seems to be for', async () => {
    const p = write('fill.safetensors', {
      'transformer.x_embedder.lora_A.weight': zeros([2, 384]),
      'transformer.x_embedder.lora_B.weight': zeros([D, 2]),
    });
    await refused(p, 'transformer.x_embedder.lora_A.weight', '[2, 384]', 'FLUX variant with 384 input channels');
  });

  it('an up of the wrong height (same input width) is caught too', async () => {
    const p = write('tall.safetensors', {
      'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': zeros([2, D]),
      'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': zeros([D + 8, 2]),
    });
    await refused(p, 'transformer.transformer_blocks.0.attn.to_q.lora_B.weight', `[${D + 8}, 2]`, `[${D}, 2]`);
  });

  it('no key that maps: refused with a sample of the keys', async () => {
    const p = write('nothing.safetensors', { 'encoder.layer.0.weight': zeros([4, 4]), 'head.bias': zeros([4]) });
    await refused(p, 'no layer of this LoRA maps onto tiny-flux-dev', 'encoder.layer.0.weight', 'head.bias');
  });

  it('only text-encoder keys: refused, saying so', async () => {
    const p = write('te-only.safetensors', {
      'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': zeros([4, 768]),
      'lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight': zeros([768, 4]),
    });
    await refused(p, 'adapts only the text encoder');
  });

  it('LyCORIS (LoKr) and DoRA files are refused, naming what they are', async () => {
    const lokr = write('lokr.safetensors', {
      'lora_unet_double_blocks_0_img_attn_qkv.lokr_w1': zeros([4, 4]),
      'lora_unet_double_blocks_0_img_attn_qkv.lokr_w2': zeros([4, 4]),
    });
    await refused(lokr, 'LyCORIS');
    const dora = write('dora.safetensors', {
      'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': zeros([2, D]),
      'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': zeros([D, 2]),
      'transformer.transformer_blocks.0.attn.to_q.lora_magnitude_vector': zeros([D]),
      'transformer.transformer_blocks.0.attn.to_q.dora_scale': zeros([1, D]),
    });
    await refused(dora, 'is a DoRA');
  });

  it('a partial match is read, with a warning that counts what was skipped; text-encoder keys are warned about', async () => {
    const deeper = { ...config, numLayers: 4, numSingleLayers: 3 };
    const p = file('deeper.safetensors');
    const written = writeTestLora(p, {
      config: deeper,
      layout: 'bfl',
      rank: 2,
      layers: 'attention',
      textEncoder: true,
    });
    const lora = await readLoraFile(p, target);
    expect(
      [...lora.layers.keys()].every((k) => /^(transformer_blocks|single_transformer_blocks)\.[01]\./.test(k)),
    ).toBe(true);
    expect(lora.layers.size).toBe(2 * 8 + 2 * 4);
    expect(written.expected.size).toBe(4 * 8 + 3 * 4);
    expect(lora.warnings).toHaveLength(2);
    expect(lora.warnings[0]).toMatch(/skipped 2 text-encoder tensors \(text_encoders\.clip_l\./);
    // double blocks 2, 3 (img qkv, txt qkv, img proj, txt proj) and single block 2 (linear1).
    expect(lora.warnings[1]).toContain('only part of this LoRA applies: 10 modules used');
    expect(lora.warnings[1]).toContain('skipped 9 modules for layers tiny-flux-dev does not have or adapt');
    expect(lora.warnings[1]).toContain('diffusion_model.double_blocks.2.');
  });

  it('unrecognised keys beside good ones are warned about with a count', async () => {
    const p = write('extra.safetensors', {
      'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': zeros([2, D]),
      'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': zeros([D, 2]),
      'transformer.transformer_blocks.0.attn.to_q.lora_B.bias': zeros([D]),
      'transformer.pos_embed.proj.weight': zeros([D, 4]),
    });
    const lora = await readLoraFile(p, target);
    expect(lora.layers.size).toBe(1);
    expect(lora.warnings.join('\n')).toMatch(
      /2 unrecognised tensors \(transformer\.transformer_blocks\.0\.attn\.to_q\.lora_B\.bias/,
    );
  });

  it('a down without its up (and an up without its down) is refused naming the key', async () => {
    const p = write('half.safetensors', {
      'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': zeros([2, D]),
      'lora_unet_double_blocks_0_img_attn_proj.alpha': zeros([]),
    });
    await refused(p, 'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight has no matching up (B) factor');
    const q = write('half-up.safetensors', {
      'diffusion_model.double_blocks.0.img_attn.proj.lora_B.weight': zeros([D, 2]),
    });
    await refused(q, 'diffusion_model.double_blocks.0.img_attn.proj.lora_B.weight has no matching down (A) factor');
  });

  it('down and up of different ranks are refused naming both shapes', async () => {
    const p = write('ranks.safetensors', {
      'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': zeros([2, D]),
      'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': zeros([D, 3]),
    });
    await refused(p, `[2, ${D}]`, `[${D}, 3]`, 'ranks (2 and 3) differ');
  });

  it('a truncated file is refused naming the file', async () => {
    const p = file('truncated.safetensors');
    writeTestLora(p, { config, layout: 'kohya', rank: 4 });
    truncateSync(p, statSync(p).size - 100);
    await refused(p, p, /truncated/);
    const q = write('stub.safetensors', {});
    truncateSync(q, 5);
    await refused(q, q, /truncated/);
  });

  it('a missing file says so', async () => {
    await refused(file('nope.safetensors'), 'does not exist');
  });

  it(`a rank above ${LORA_LIMITS.maxRank} is refused before reading; kohya split qkv of 3 × 64 is rank 64 per layer`, async () => {
    const r = LORA_LIMITS.maxRank + 2;
    const p = file('rank.safetensors');
    writeTestLora(p, { config, layout: 'diffusers', rank: r, layers: ['transformer_blocks.0.attn.to_q'] });
    await refused(p, `rank ${r}, above the limit of ${LORA_LIMITS.maxRank}`);
    const q = file('split-64.safetensors');
    writeTestLora(q, {
      config,
      layout: 'kohya',
      rank: 64,
      splitFused: true,
      layers: ['transformer_blocks.0.attn.to_q'],
    });
    const lora = await readLoraFile(q, target);
    expect(lora.layers.get('transformer_blocks.0.attn.to_k')!.rank).toBe(64);
    // A dense fused module of rank 3 × 64 cannot shrink: refused after its values are seen.
    const dense = write('dense-192.safetensors', {
      'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight': zeros([192, D]),
      'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight': zeros([3 * D, 192]),
    });
    await refused(dense, 'rank 192, above the limit');
  });

  it('integer factors and a non-scalar alpha are refused', async () => {
    const p = write('int.safetensors', {
      'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': {
        dtype: 'int8',
        shape: [2, D],
        data: new Int8Array(2 * D),
      },
      'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': zeros([D, 2]),
    });
    await refused(p, 'is int8; LoRA factors must be float');
    const q = write('alpha-vec.safetensors', {
      'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': zeros([2, D]),
      'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight': zeros([D, 2]),
      'lora_unet_double_blocks_0_img_attn_proj.alpha': zeros([2]),
    });
    await refused(q, 'should be one float (the alpha)');
    const neg = write('alpha-neg.safetensors', {
      'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': zeros([2, D]),
      'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight': zeros([D, 2]),
      'lora_unet_double_blocks_0_img_attn_proj.alpha': { dtype: 'float32', shape: [], data: Float32Array.of(-4) },
    });
    await refused(neg, 'alpha must be a positive number');
  });
});
