import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FluxTransformerConfig } from '../../src/engine/checkpoint/flux-config.ts';
import { readLoraFile } from '../../src/engine/lora/files/read.ts';
import { fluxLoraTarget } from '../../src/engine/lora/files/target.ts';
import { hashAndRead } from '../../src/engine/lora/files/tensors.ts';
import type { LoraFile, LoraFormat } from '../../src/engine/lora/types.ts';
import { writeTestLora, type TestLora } from '../../src/engine/tiny-model/lora.ts';
import { float32ToF8e4m3fnArray, f8e4m3fnToFloat32Array } from '../../src/engine/weights/dtype.ts';
import {
  readSafetensors,
  SafetensorsFile,
  toFloat32,
  writeSafetensors,
  type HostTensor,
} from '../../src/engine/weights/safetensors.ts';
import { tinyFluxConfig } from '../support/fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-lora-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string) => path.join(tmp, name);

const config: FluxTransformerConfig = tinyFluxConfig();
const target = fluxLoraTarget(config, 'tiny-flux-dev');
const D = config.inner;
const LAYOUTS: LoraFormat[] = ['diffusers', 'kohya', 'bfl', 'xlabs'];

const f32 = (data: number[] | Float32Array, shape: number[]): HostTensor => ({
  dtype: 'float32',
  shape,
  data: Float32Array.from(data),
});
const ramp = (n: number, k = 1) => Float32Array.from({ length: n }, (_, i) => k * (i + 1) * 0.01);

/** Every layer read equals what the writer says a correct reader returns, value for value. */
function expectMatches(lora: LoraFile, written: TestLora) {
  expect([...lora.layers.keys()].sort()).toEqual([...written.expected.keys()].sort());
  for (const [name, want] of written.expected) {
    const got = lora.layers.get(name)!;
    expect(got.rank, name).toBe(want.rank);
    expect(got.alphaScale, name).toBe(want.alphaScale);
    expect(got.down, name).toEqual(want.down);
    expect(got.up, name).toEqual(want.up);
    expect(got.inFeatures * got.rank).toBe(got.down.length);
    expect(got.outFeatures * got.rank).toBe(got.up.length);
    expect([got.outFeatures, got.inFeatures]).toEqual(target.layerShape(name));
  }
}

describe('LoRA files: each layout maps onto the engine layers', () => {
  for (const layout of LAYOUTS) {
    it(`${layout}: every layer the layout can hold, bf16, alpha 8 at rank 4`, async () => {
      const p = file(`all-${layout}.safetensors`);
      const written = writeTestLora(p, {
        config,
        layout,
        rank: 4,
        alpha: 8,
        seed: 3,
        metadata: {
          'modelspec.title': 'Ink',
          'modelspec.trigger_phrase': 'inkwash, brush',
          ss_base_model_version: 'flux1',
        },
      });
      const lora = await readLoraFile(p, target);
      expect(lora.format).toBe(layout);
      expect(lora.path).toBe(p);
      expect(lora.sha256).toBe(createHash('sha256').update(readFileSync(p)).digest('hex'));
      expect(lora.meta).toEqual({ triggerWords: ['inkwash', 'brush'], baseModel: 'flux1', title: 'Ink' });
      expect(lora.warnings).toEqual([]);
      expectMatches(lora, written);
      // XLabs has no alpha (x-flux trains with alpha = rank); the others scale by alpha / rank = 2.
      for (const l of lora.layers.values()) expect(l.alphaScale).toBe(layout === 'xlabs' ? 1 : 2);
      const count = lora.layers.size;
      // 2 double blocks × 14 linears + 2 single × 6 + 10 top-level (dev: guidance) ; XLabs: attention only.
      expect(count).toBe(layout === 'xlabs' ? 2 * 8 + 2 * 4 : 2 * 14 + 2 * 6 + 10);
    });
  }

  it('the same seed gives the same engine layers in all four layouts (double-block attention)', async () => {
    const layers = (l: string) => l.startsWith('transformer_blocks.') && /\.attn\./.test(l);
    const read = await Promise.all(
      LAYOUTS.map(async (layout) => {
        const p = file(`same-${layout}.safetensors`);
        writeTestLora(p, { config, layout, rank: 3, seed: 11, layers, dtype: 'float32' });
        return readLoraFile(p, target);
      }),
    );
    const [first, ...rest] = read;
    expect(first!.layers.size).toBe(2 * 8);
    for (const other of rest) {
      expect([...other.layers.keys()].sort()).toEqual([...first!.layers.keys()].sort());
      for (const [name, l] of first!.layers) {
        const o = other.layers.get(name)!;
        expect(o.down, `${other.format} ${name}`).toEqual(l.down);
        expect(o.up, `${other.format} ${name}`).toEqual(l.up);
        expect(o.alphaScale).toBe(1);
      }
    }
  });

  it("XLabs' single-block qkv_lora is linear1's q, k, v rows: equal to kohya's linear1 without the MLP part", async () => {
    const single = (l: string) => l.startsWith('single_transformer_blocks.');
    const x = file('single-xlabs.safetensors');
    const k = file('single-kohya.safetensors');
    writeTestLora(x, { config, layout: 'xlabs', rank: 2, seed: 5, layers: single });
    writeTestLora(k, { config, layout: 'kohya', rank: 2, seed: 5, layers: single });
    const [xl, ko] = [await readLoraFile(x, target), await readLoraFile(k, target)];
    const extra = [...ko.layers.keys()].filter((n) => !xl.layers.has(n));
    expect(extra.sort()).toEqual([
      'single_transformer_blocks.0.norm.linear',
      'single_transformer_blocks.0.proj_mlp',
      'single_transformer_blocks.1.norm.linear',
      'single_transformer_blocks.1.proj_mlp',
    ]);
    for (const [name, l] of xl.layers) {
      expect(ko.layers.get(name)!.down).toEqual(l.down);
      expect(ko.layers.get(name)!.up).toEqual(l.up);
    }
  });

  it('a fused module splits exactly: one shared down array, the up row blocks of the file in q, k, v, mlp order', async () => {
    const p = file('fused.safetensors');
    writeTestLora(p, { config, layout: 'kohya', rank: 4, seed: 9, dtype: 'float32' });
    const lora = await readLoraFile(p, target);
    const { tensors } = readSafetensors(p);
    const fileUp = tensors['lora_unet_single_blocks_1_linear1.lora_up.weight']!.data as Float32Array;
    const fileDown = tensors['lora_unet_single_blocks_1_linear1.lora_down.weight']!.data as Float32Array;
    expect(tensors['lora_unet_single_blocks_1_linear1.lora_up.weight']!.shape).toEqual([3 * D + config.mlp, 4]);
    const parts = ['attn.to_q', 'attn.to_k', 'attn.to_v', 'proj_mlp'].map((n) =>
      lora.layers.get(`single_transformer_blocks.1.${n}`)!,
    );
    for (const part of parts) expect(part.down).toBe(parts[0]!.down);
    expect(parts[0]!.down).toEqual(fileDown);
    let row = 0;
    for (const part of parts) {
      expect(part.up).toEqual(fileUp.slice(row * 4, (row + part.outFeatures) * 4));
      row += part.outFeatures;
    }
    expect(row).toBe(3 * D + config.mlp);
    // Applied to an input, the parts' outputs stacked are the fused module's output, bit for bit.
    const x = ramp(D);
    const apply = (down: Float32Array, up: Float32Array, rank: number, out: number) => {
      const h = Array.from({ length: rank }, (_, r) =>
        down.subarray(r * D, (r + 1) * D).reduce((s, v, i) => s + v * x[i]!, 0),
      );
      return Array.from({ length: out }, (_, o) => h.reduce((s, v, r) => s + up[o * rank + r]! * v, 0));
    };
    const fused = apply(fileDown, fileUp, 4, 3 * D + config.mlp);
    expect(parts.flatMap((pt) => apply(pt.down, pt.up, 4, pt.outFeatures))).toEqual(fused);
  });

  it("a diffusers file's copies of one down (a converted fused qkv) are read into one shared array", async () => {
    const p = file('copies.safetensors');
    writeTestLora(p, { config, layout: 'diffusers', rank: 2, layers: 'attention' });
    const lora = await readLoraFile(p, target);
    const down = (n: string) => lora.layers.get(`transformer_blocks.1.attn.${n}`)!.down;
    expect(down('to_k')).toBe(down('to_q'));
    expect(down('to_v')).toBe(down('to_q'));
    expect(down('add_q_proj')).not.toBe(down('to_q'));
    expect(down('to_out.0')).not.toBe(down('to_q'));
  });

  it("kohya's split_qkv (rank 3r, block-diagonal up) reads as rank r per layer, scaled by alpha over the file's rank", async () => {
    const p = file('split.safetensors');
    const written = writeTestLora(p, { config, layout: 'kohya', rank: 2, alpha: 3, seed: 2, splitFused: true });
    const { tensors } = readSafetensors(p);
    expect(tensors['lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight']!.shape).toEqual([6, D]);
    expect(tensors['lora_unet_single_blocks_0_linear1.lora_up.weight']!.shape).toEqual([3 * D + config.mlp, 8]);
    const lora = await readLoraFile(p, target);
    expectMatches(lora, written);
    expect(lora.layers.get('transformer_blocks.0.attn.to_k')!.rank).toBe(2);
    expect(lora.layers.get('transformer_blocks.0.attn.to_k')!.alphaScale).toBe(3 / 6);
    expect(lora.layers.get('single_transformer_blocks.0.proj_mlp')!.alphaScale).toBe(3 / 8);
    expect(lora.layers.get('transformer_blocks.0.attn.to_out.0')!.alphaScale).toBe(3 / 2);
  });

  it("BFL's final adaLN (shift, scale) up rows become norm_out.linear's (scale, shift)", async () => {
    const p = file('final.safetensors');
    writeTestLora(p, { config, layout: 'bfl', rank: 2, layers: ['norm_out.linear', 'proj_out'], dtype: 'float32' });
    const d = file('final-diffusers.safetensors');
    writeTestLora(d, {
      config,
      layout: 'diffusers',
      rank: 2,
      layers: ['norm_out.linear', 'proj_out'],
      dtype: 'float32',
    });
    const { tensors } = readSafetensors(p);
    const fileUp = tensors['diffusion_model.final_layer.adaLN_modulation.1.lora_B.weight']!.data as Float32Array;
    const lora = await readLoraFile(p, target);
    const up = lora.layers.get('norm_out.linear')!.up;
    const half = D * 2;
    expect(up.subarray(0, half)).toEqual(fileUp.subarray(half));
    expect(up.subarray(half)).toEqual(fileUp.subarray(0, half));
    const diffusers = await readLoraFile(d, target);
    expect(diffusers.layers.get('norm_out.linear')!.up).toEqual(up);
    expect(diffusers.layers.get('proj_out')!.up).toEqual(lora.layers.get('proj_out')!.up);
  });

  it('f32, f16 and bf16 factors read back to the values stored; fp8 (e4m3fn) too', async () => {
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const p = file(`dtype-${dtype}.safetensors`);
      const written = writeTestLora(p, { config, layout: 'diffusers', rank: 3, dtype, layers: 'attention' });
      expectMatches(await readLoraFile(p, target), written);
    }
    const down = float32ToF8e4m3fnArray(ramp(2 * D));
    const up = float32ToF8e4m3fnArray(ramp(D * 2, -1));
    const p = file('fp8.safetensors');
    writeSafetensors(p, {
      'transformer.transformer_blocks.0.attn.to_q.lora_A.weight': { dtype: 'float8e4m3fn', shape: [2, D], data: down },
      'transformer.transformer_blocks.0.attn.to_q.lora_B.weight': { dtype: 'float8e4m3fn', shape: [D, 2], data: up },
    });
    const l = (await readLoraFile(p, target)).layers.get('transformer_blocks.0.attn.to_q')!;
    expect(l.down).toEqual(f8e4m3fnToFloat32Array(down));
    expect(l.up).toEqual(f8e4m3fnToFloat32Array(up));
  });

  it('alpha: a scalar tensor, alpha / rank; none → 1; 0 → 1 (kohya: no scaling)', async () => {
    const cases: [HostTensor | undefined, number][] = [
      [undefined, 1],
      [f32([8], []), 4],
      [f32([1], [1]), 0.5],
      [{ dtype: 'bfloat16', shape: [], data: Uint16Array.of(0x4080) }, 2], // bf16 4.0
      [f32([0], []), 1],
    ];
    for (const [i, [alpha, scale]] of cases.entries()) {
      const p = file(`alpha-${i}.safetensors`);
      writeSafetensors(p, {
        'lora_unet_double_blocks_0_img_attn_proj.lora_down.weight': f32(ramp(2 * D), [2, D]),
        'lora_unet_double_blocks_0_img_attn_proj.lora_up.weight': f32(ramp(2 * D), [D, 2]),
        ...(alpha ? { 'lora_unet_double_blocks_0_img_attn_proj.alpha': alpha } : {}),
      });
      const l = (await readLoraFile(p, target)).layers.get('transformer_blocks.0.attn.to_out.0')!;
      expect(l.alphaScale, `case ${i}`).toBe(scale);
    }
  });

  it("diffusers/PEFT alpha from the adapter config in the metadata (lora_alpha, alpha_pattern, rsLoRA); a tensor's .alpha wins", async () => {
    const pair = (m: string): Record<string, HostTensor> => ({
      [`transformer.${m}.lora_A.weight`]: f32(ramp(4 * D), [4, D]),
      [`transformer.${m}.lora_B.weight`]: f32(ramp(4 * D), [D, 4]),
    });
    const tensors = { ...pair('transformer_blocks.0.attn.to_q'), ...pair('transformer_blocks.0.attn.to_out.0') };
    const read = async (name: string, config: unknown, extra: Record<string, HostTensor> = {}) => {
      const p = file(name);
      writeSafetensors(p, { ...tensors, ...extra }, { format: 'pt', lora_adapter_metadata: JSON.stringify(config) });
      const l = await readLoraFile(p, target);
      return [
        l.layers.get('transformer_blocks.0.attn.to_q')!.alphaScale,
        l.layers.get('transformer_blocks.0.attn.to_out.0')!.alphaScale,
      ];
    };
    expect(await read('peft-model.safetensors', { r: 4, lora_alpha: 8 })).toEqual([2, 2]);
    expect(await read('peft-pipe.safetensors', { 'transformer.r': 4, 'transformer.lora_alpha': 2 })).toEqual([
      0.5, 0.5,
    ]);
    expect(await read('peft-pattern.safetensors', { r: 4, lora_alpha: 4, alpha_pattern: { 'to_out.0': 12 } })).toEqual([
      1, 3,
    ]);
    expect(await read('peft-rs.safetensors', { r: 4, lora_alpha: 4, use_rslora: true })).toEqual([2, 2]);
    expect(await read('peft-none.safetensors', { r: 4 })).toEqual([1, 1]);
    const alpha = { 'transformer.transformer_blocks.0.attn.to_q.alpha': f32([1], []) };
    expect(await read('peft-tensor.safetensors', { r: 4, lora_alpha: 8 }, alpha)).toEqual([0.25, 2]);
  });

  it('the one-pass reader hashes the whole file and catches tensors across chunk boundaries', async () => {
    const p = file('chunks.safetensors');
    writeTestLora(p, { config, layout: 'kohya', rank: 3, dtype: 'float16' });
    const st = readSafetensors(p);
    const sf = new SafetensorsFile(p);
    const wanted = sf.names().map((key) => {
      const t = sf.info(key);
      return { key, dtype: t.dtype, start: sf.dataStart + t.begin, end: sf.dataStart + t.end };
    });
    const { sha256, tensors } = await hashAndRead(p, wanted, 61);
    expect(sha256).toBe(createHash('sha256').update(readFileSync(p)).digest('hex'));
    for (const [key, t] of Object.entries(st.tensors)) expect(tensors.get(key), key).toEqual(toFloat32(t));
  });
});

describe('LoRA files: hand-written keys in the real spellings', () => {
  /** A file with a down [2, in] / up [out, 2] pair under each given module prefix, with the given suffixes. */
  async function mapped(name: string, pairs: [string, string, number, number][]): Promise<LoraFile> {
    const tensors: Record<string, HostTensor> = {};
    for (const [down, up, inF, outF] of pairs) {
      tensors[down] = f32(ramp(2 * inF), [2, inF]);
      tensors[up] = f32(ramp(outF * 2), [outF, 2]);
    }
    const p = file(name);
    writeSafetensors(p, tensors);
    return readLoraFile(p, target);
  }
  const keys = (l: LoraFile) => [...l.layers.keys()].sort();

  it('diffusers / PEFT with transformer., base_model.model. and no prefix', async () => {
    const l = await mapped('hand-diffusers.safetensors', [
      [
        'transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight',
        'transformer.single_transformer_blocks.0.attn.to_k.lora_B.weight',
        D,
        D,
      ],
      [
        'base_model.model.transformer_blocks.1.ff_context.net.2.lora_A.weight',
        'base_model.model.transformer_blocks.1.ff_context.net.2.lora_B.weight',
        config.mlp,
        D,
      ],
      [
        'single_transformer_blocks.1.norm.linear.lora_A.weight',
        'single_transformer_blocks.1.norm.linear.lora_B.weight',
        D,
        3 * D,
      ],
      [
        'transformer.transformer_blocks.0.attn.add_v_proj.lora.down.weight',
        'transformer.transformer_blocks.0.attn.add_v_proj.lora.up.weight',
        D,
        D,
      ],
    ]);
    expect(l.format).toBe('diffusers');
    expect(keys(l)).toEqual([
      'single_transformer_blocks.0.attn.to_k',
      'single_transformer_blocks.1.norm.linear',
      'transformer_blocks.0.attn.add_v_proj',
      'transformer_blocks.1.ff_context.net.2',
    ]);
  });

  it('kohya lora_unet_ (BFL names); OneTrainer lora_transformer_ and SimpleTuner lycoris_ (diffusers names)', async () => {
    const l = await mapped('hand-kohya.safetensors', [
      [
        'lora_unet_double_blocks_1_txt_attn_qkv.lora_down.weight',
        'lora_unet_double_blocks_1_txt_attn_qkv.lora_up.weight',
        D,
        3 * D,
      ],
      [
        'lora_unet_double_blocks_0_img_mod_lin.lora_down.weight',
        'lora_unet_double_blocks_0_img_mod_lin.lora_up.weight',
        D,
        6 * D,
      ],
      [
        'lora_unet_single_blocks_1_linear2.lora_down.weight',
        'lora_unet_single_blocks_1_linear2.lora_up.weight',
        D + config.mlp,
        D,
      ],
      [
        'lora_unet_double_blocks_0_txt_mlp_0.lora_down.weight',
        'lora_unet_double_blocks_0_txt_mlp_0.lora_up.weight',
        D,
        config.mlp,
      ],
      [
        'lora_transformer_single_transformer_blocks_0_attn_to_q.lora_down.weight',
        'lora_transformer_single_transformer_blocks_0_attn_to_q.lora_up.weight',
        D,
        D,
      ],
      ['lora_unet_guidance_in_in_layer.lora_down.weight', 'lora_unet_guidance_in_in_layer.lora_up.weight', 256, D],
      [
        'lycoris_single_transformer_blocks_0_norm_linear.lora_down.weight',
        'lycoris_single_transformer_blocks_0_norm_linear.lora_up.weight',
        D,
        3 * D,
      ],
      [
        'lycoris_transformer_blocks_1_ff_net_0_proj.lora_down.weight',
        'lycoris_transformer_blocks_1_ff_net_0_proj.lora_up.weight',
        D,
        config.mlp,
      ],
    ]);
    expect(l.format).toBe('kohya');
    expect(keys(l)).toEqual([
      'single_transformer_blocks.0.attn.to_q',
      'single_transformer_blocks.0.norm.linear',
      'single_transformer_blocks.1.proj_out',
      'time_text_embed.guidance_embedder.linear_1',
      'transformer_blocks.0.ff_context.net.0.proj',
      'transformer_blocks.0.norm1.linear',
      'transformer_blocks.1.attn.add_k_proj',
      'transformer_blocks.1.attn.add_q_proj',
      'transformer_blocks.1.attn.add_v_proj',
      'transformer_blocks.1.ff.net.0.proj',
    ]);
  });

  it('BFL / ComfyUI with diffusion_model. and bare, PEFT and kohya suffixes', async () => {
    const l = await mapped('hand-bfl.safetensors', [
      [
        'diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight',
        'diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight',
        D,
        3 * D,
      ],
      ['double_blocks.1.txt_attn.proj.lora_A.weight', 'double_blocks.1.txt_attn.proj.lora_B.weight', D, D],
      [
        'diffusion_model.single_blocks.0.modulation.lin.lora_down.weight',
        'diffusion_model.single_blocks.0.modulation.lin.lora_up.weight',
        D,
        3 * D,
      ],
      ['diffusion_model.img_in.lora_A.weight', 'diffusion_model.img_in.lora_B.weight', config.inChannels, D],
      [
        'diffusion_model.single_blocks.1.linear1_qkv.lora_A.weight',
        'diffusion_model.single_blocks.1.linear1_qkv.lora_B.weight',
        D,
        3 * D,
      ],
    ]);
    expect(l.format).toBe('bfl');
    expect(keys(l)).toEqual([
      'single_transformer_blocks.0.norm.linear',
      'single_transformer_blocks.1.attn.to_k',
      'single_transformer_blocks.1.attn.to_q',
      'single_transformer_blocks.1.attn.to_v',
      'transformer_blocks.0.attn.to_k',
      'transformer_blocks.0.attn.to_q',
      'transformer_blocks.0.attn.to_v',
      'transformer_blocks.1.attn.to_add_out',
      'x_embedder',
    ]);
  });

  it('XLabs processor keys: lora1 image stream, lora2 text stream, single-block qkv and proj', async () => {
    const l = await mapped('hand-xlabs.safetensors', [
      ['double_blocks.1.processor.proj_lora2.down.weight', 'double_blocks.1.processor.proj_lora2.up.weight', D, D],
      ['double_blocks.0.processor.qkv_lora2.down.weight', 'double_blocks.0.processor.qkv_lora2.up.weight', D, 3 * D],
      [
        'single_blocks.1.processor.proj_lora.down.weight',
        'single_blocks.1.processor.proj_lora.up.weight',
        D + config.mlp,
        D,
      ],
      ['single_blocks.0.processor.qkv_lora.down.weight', 'single_blocks.0.processor.qkv_lora.up.weight', D, 3 * D],
    ]);
    expect(l.format).toBe('xlabs');
    expect(keys(l)).toEqual([
      'single_transformer_blocks.0.attn.to_k',
      'single_transformer_blocks.0.attn.to_q',
      'single_transformer_blocks.0.attn.to_v',
      'single_transformer_blocks.1.proj_out',
      'transformer_blocks.0.attn.add_k_proj',
      'transformer_blocks.0.attn.add_q_proj',
      'transformer_blocks.0.attn.add_v_proj',
      'transformer_blocks.1.attn.to_add_out',
    ]);
  });

  it('one hand-written fused qkv in all four spellings reads to the same layers', async () => {
    const down = ramp(2 * D);
    const up = ramp(3 * D * 2, -1);
    const alpha = f32([2], []);
    const spellings: Record<LoraFormat, Record<string, HostTensor>> = {
      kohya: {
        'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight': f32(down, [2, D]),
        'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight': f32(up, [3 * D, 2]),
        'lora_unet_double_blocks_0_img_attn_qkv.alpha': alpha,
      },
      bfl: {
        'diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight': f32(down, [2, D]),
        'diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight': f32(up, [3 * D, 2]),
        'diffusion_model.double_blocks.0.img_attn.qkv.alpha': alpha,
      },
      xlabs: {
        'double_blocks.0.processor.qkv_lora1.down.weight': f32(down, [2, D]),
        'double_blocks.0.processor.qkv_lora1.up.weight': f32(up, [3 * D, 2]),
      },
      diffusers: Object.fromEntries(
        ['to_q', 'to_k', 'to_v'].flatMap((n, k) => [
          [`transformer.transformer_blocks.0.attn.${n}.lora_A.weight`, f32(down, [2, D])],
          [
            `transformer.transformer_blocks.0.attn.${n}.lora_B.weight`,
            f32(up.slice(k * D * 2, (k + 1) * D * 2), [D, 2]),
          ],
          [`transformer.transformer_blocks.0.attn.${n}.alpha`, alpha],
        ]),
      ),
    };
    const files = await Promise.all(
      LAYOUTS.map(async (layout) => {
        const p = file(`spellings-${layout}.safetensors`);
        writeSafetensors(p, spellings[layout]);
        return readLoraFile(p, target);
      }),
    );
    for (const [i, lora] of files.entries()) {
      expect(lora.format).toBe(LAYOUTS[i]);
      expect([...lora.layers.keys()].sort()).toEqual([
        'transformer_blocks.0.attn.to_k',
        'transformer_blocks.0.attn.to_q',
        'transformer_blocks.0.attn.to_v',
      ]);
      ['to_q', 'to_k', 'to_v'].forEach((n, k) => {
        const l = lora.layers.get(`transformer_blocks.0.attn.${n}`)!;
        expect(l).toEqual({
          down,
          up: up.slice(k * D * 2, (k + 1) * D * 2),
          rank: 2,
          inFeatures: D,
          outFeatures: D,
          alphaScale: 1,
        });
      });
    }
  });

  it('the test writer spells keys as the real layouts do', () => {
    const spell = (layout: LoraFormat, prefix?: string) =>
      writeTestLora(file(`spell-${layout}${prefix ?? ''}.safetensors`), {
        config,
        layout,
        rank: 1,
        alpha: 1,
        ...(prefix !== undefined ? { prefix } : {}),
        layers: ['transformer_blocks.0.attn.to_q', 'single_transformer_blocks.0.proj_out'],
      }).keys;
    expect(spell('kohya')).toEqual([
      'lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight',
      'lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight',
      'lora_unet_double_blocks_0_img_attn_qkv.alpha',
      'lora_unet_single_blocks_0_linear2.lora_down.weight',
      'lora_unet_single_blocks_0_linear2.lora_up.weight',
      'lora_unet_single_blocks_0_linear2.alpha',
    ]);
    expect(spell('diffusers')).toContain('transformer.transformer_blocks.0.attn.to_q.lora_A.weight');
    expect(spell('diffusers', '')).toContain('single_transformer_blocks.0.proj_out.lora_B.weight');
    expect(spell('bfl')).toContain('diffusion_model.double_blocks.0.img_attn.qkv.lora_B.weight');
    expect(spell('xlabs')).toEqual([
      'double_blocks.0.processor.qkv_lora1.down.weight',
      'double_blocks.0.processor.qkv_lora1.up.weight',
      'single_blocks.0.processor.proj_lora.down.weight',
      'single_blocks.0.processor.proj_lora.up.weight',
    ]);
  });
});
