import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeForms, loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { VaeCodec, type Nchw } from '../../src/engine/graphs/vae-codec.ts';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import { plainPlan } from '../../src/engine/pipeline/run-plan.ts';
import { f32ToF8e4m3fn, f8e4m3fnToF32 } from '../../src/engine/weights/dtype.ts';
import { SafetensorsFile, toFloat32, writeSafetensors, type HostTensor } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';
import { cpu, sample } from './checkpoint-support.ts';

/**
 * The files people have, written here from the tiny fixtures (real files, read by the real readers): fp8 and
 * ComfyUI scaled-fp8 single files, BFL's ae.safetensors, ComfyUI all-in-one checkpoints, and model sets that mix
 * forms. Each is checked for names, shapes and bytes against the diffusers fixture, and the bad ones for their
 * messages.
 */

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
type Tensors = Record<string, HostTensor>;

const read = (file: string): Tensors => {
  const f = new SafetensorsFile(file);
  return Object.fromEntries(f.names().map((n) => [n, f.read(n)]));
};
const bflFlux = () => read(fixture('tiny-flux-dev-bfl', 'flux.safetensors'));
const bflAe = () => read(fixture('tiny-flux-dev-bfl', 'ae.safetensors'));
const clip = () => read(fixture('tiny-flux-dev', 'text_encoder', 'model.safetensors'));
const t5 = () => read(fixture('tiny-flux-dev', 'text_encoder_2', 'model.safetensors'));
const diffusers = () => loadCheckpoint(fixture('tiny-flux-dev'));

function folder(name: string): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The tokenizer folders a set of single files needs beside it (they are never inside weights files). */
function withTokenizers(dir: string): string {
  for (const t of ['tokenizer', 'tokenizer_2'])
    cpSync(fixture('tiny-flux-dev', t), path.join(dir, t), { recursive: true });
  return dir;
}

const prefixed = (prefix: string, t: Tensors): Tensors =>
  Object.fromEntries(Object.entries(t).map(([k, v]) => [prefix + k, v]));

/** Linear weights (2-D `.weight`) as fp8 e4m3fn of value/scale; other tensors unchanged. Returns the scales used. */
function toFp8(
  t: Tensors,
  scaleOf: (name: string) => number = () => 1,
): { tensors: Tensors; scales: Map<string, number> } {
  const out: Tensors = {};
  const scales = new Map<string, number>();
  for (const [k, v] of Object.entries(t)) {
    if (v.shape.length !== 2 || !k.endsWith('.weight')) {
      out[k] = v;
      continue;
    }
    const s = scaleOf(k);
    out[k] = {
      dtype: 'float8e4m3fn',
      shape: v.shape,
      data: Uint8Array.from(toFloat32(v), (x) => f32ToF8e4m3fn(x / s)),
    };
    scales.set(k, s);
  }
  return { tensors: out, scales };
}

/** ComfyUI's scaled-fp8 form: the marker, and a scalar F32 scale_weight (and scale_input) per fp8 weight. */
function scaledFp8(t: Tensors): { tensors: Tensors; scales: Map<string, number> } {
  // Scales with full mantissas (not powers of two), so a scale applied twice or not at all shows.
  const { tensors, scales } = toFp8(t, (k) => 0.0173 + (k.length % 7) * 0.0031);
  tensors.scaled_fp8 = { dtype: 'float8e4m3fn', shape: [0], data: new Uint8Array(0) };
  for (const [k, s] of scales) {
    const base = k.slice(0, -'.weight'.length);
    tensors[`${base}.scale_weight`] = { dtype: 'float32', shape: [], data: Float32Array.of(s) };
    tensors[`${base}.scale_input`] = { dtype: 'float32', shape: [], data: Float32Array.of(1) };
  }
  return { tensors, scales };
}

async function decode(source: string): Promise<Float32Array> {
  const vae = new VaeCodec(loadCheckpoint(source).component('vae'), cpu);
  try {
    const gold = new SafetensorsFile(fixture('golden', 'vae.safetensors'));
    const latent: Nchw = {
      data: gold.readFloat32('decode_latent'),
      shape: gold.info('decode_latent').shape as Nchw['shape'],
    };
    return (await vae.decode(latent)).data;
  } finally {
    await vae.release();
  }
}

/** Every weight of `got` equals the diffusers fixture's, value for value (bf16 → f32 is exact, so bytes are equal). */
function expectSameWeights(
  got: { names(): string[]; info(n: string): { shape: number[] }; readFloat32(n: string): Float32Array },
  want: typeof got,
): void {
  expect(got.names().sort()).toEqual(want.names().sort());
  for (const n of want.names()) {
    expect(got.info(n).shape, n).toEqual(want.info(n).shape);
    expect(same(got.readFloat32(n), want.readFloat32(n)), n).toBe(true);
  }
}

/** Bit-for-bit equality of two float arrays (toEqual walks large arrays element by element, slowly). */
function same(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe("BFL's ae.safetensors", () => {
  it('maps onto diffusers AutoencoderKL names with the same bytes, and derives the config from its shapes', () => {
    const dir = folder('ae-only');
    copyFileSync(fixture('tiny-flux-dev-bfl', 'ae.safetensors'), path.join(dir, 'ae.safetensors'));
    copyFileSync(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), path.join(dir, 'flux.safetensors'));
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(dir, 'params.json'));
    const vae = loadCheckpoint(dir).component('vae');
    const ref = diffusers().component('vae');
    expectSameWeights(vae.weights, ref.weights);
    // The attention projections are 1×1 convs in the file and linears in diffusers.
    expect(vae.weights.info('decoder.mid_block.attentions.0.to_out.0.weight').shape).toEqual([64, 64]);
    const keys = [
      'block_out_channels',
      'layers_per_block',
      'latent_channels',
      'in_channels',
      'out_channels',
      'norm_num_groups',
      'scaling_factor',
      'shift_factor',
      'use_quant_conv',
      'use_post_quant_conv',
      'mid_block_add_attention',
    ];
    expect(Object.fromEntries(keys.map((k) => [k, vae.config[k]]))).toEqual(
      Object.fromEntries(keys.map((k) => [k, ref.config[k]])),
    );
    expect(vae.configFile).toBe('ae.safetensors (config from its tensor shapes)');
    expect(loadCheckpoint(dir).form?.('vae')).toEqual({ file: 'ae.safetensors', keys: 'bfl', storage: 'BF16 ×176' });
  });

  it('decodes exactly as the diffusers VAE does', async () => {
    expect(same(await decode(fixture('tiny-flux-dev-bfl')), await decode(fixture('tiny-flux-dev')))).toBe(true);
  });

  it('refuses tensors that are not an autoencoder, and an autoencoder that is not FLUX.1', () => {
    const dir = folder('ae-bad');
    // params.json without its "ae" section: the latent scaling must then come from FLUX.1's own values.
    const params = JSON.parse(readFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(path.join(dir, 'params.json'), JSON.stringify({ flux: params.flux }));
    mkdirSync(path.join(dir, 'transformer'));
    copyFileSync(fixture('tiny-flux-dev-bfl', 'flux.safetensors'), path.join(dir, 'transformer', 'flux.safetensors'));
    const ae = bflAe();
    writeSafetensors(path.join(dir, 'ae.safetensors'), {
      ...ae,
      'encoder.down.0.lora_up.weight': ae['encoder.conv_in.bias']!,
    });
    expect(() => loadCheckpoint(dir).component('vae')).toThrow(
      /^ae\.safetensors: tensors encoder\.down\.0\.lora_up\.weight are not part of a FLUX\.1 autoencoder/,
    );
    // An SD-style 4-channel autoencoder: its latent scaling is not FLUX's, so it is refused rather than guessed.
    const conv = ae['decoder.conv_in.weight']!;
    writeSafetensors(path.join(dir, 'ae.safetensors'), {
      ...ae,
      'decoder.conv_in.weight': {
        ...conv,
        shape: [64, 4, 3, 3],
        data: (conv.data as Uint16Array).subarray(0, 64 * 4 * 9),
      },
    });
    expect(() => loadCheckpoint(dir).component('vae')).toThrow(
      /^ae\.safetensors: a 4-channel autoencoder is not FLUX\.1's \(16 channels\)/,
    );
  });
});

describe('fp8 e4m3fn single files', () => {
  it('a BFL-named fp8 transformer (flux1-dev-fp8.safetensors) keeps its fp8 bytes and runs like the same values in bf16', async () => {
    const dir = folder('fp8-bfl');
    const { tensors } = toFp8(bflFlux());
    writeSafetensors(path.join(dir, 'flux1-dev-fp8.safetensors'), tensors);
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(dir, 'params.json'));
    const ck = loadCheckpoint(path.join(dir, 'flux1-dev-fp8.safetensors'));
    const w = ck.transformerWeights();
    expect(w.info('transformer_blocks.0.attn.to_k.weight').dtype).toBe('float8e4m3fn');
    expect(w.info('transformer_blocks.0.attn.to_k.bias').dtype).toBe('bfloat16');
    const qkv = tensors['double_blocks.0.img_attn.qkv.weight']!.data as Uint8Array;
    expect(w.readFloat32('transformer_blocks.0.attn.to_k.weight')).toEqual(
      Float32Array.from(qkv.subarray(32 * 32, 2 * 32 * 32), f8e4m3fnToF32),
    );
    expect(ck.form?.('transformer')).toEqual({
      file: 'flux1-dev-fp8.safetensors',
      keys: 'bfl',
      storage: 'BF16 ×48, F8_E4M3 ×36',
    });
    // The same values stored as bf16 (fp8 values are exact in bf16): the fp8 graph must give the same output.
    const wide = folder('fp8-bfl-as-bf16');
    const asBf16: Tensors = Object.fromEntries(
      Object.entries(tensors).map(([k, v]) => [
        k,
        v.dtype === 'float8e4m3fn'
          ? {
              dtype: 'bfloat16',
              shape: v.shape,
              data: Uint16Array.from(v.data as Uint8Array, (b) => bf16Bits(f8e4m3fnToF32(b))),
            }
          : v,
      ]),
    );
    writeSafetensors(path.join(wide, 'flux1-dev.safetensors'), asBf16);
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(wide, 'params.json'));
    expect(same(await sample(dir), await sample(wide))).toBe(true);
  });

  it('ComfyUI scaled fp8: scale_weight is folded into each weight, scale_input and the marker are not weights', () => {
    const dir = folder('scaled-fp8');
    const { tensors, scales } = scaledFp8(bflFlux());
    writeSafetensors(path.join(dir, 'flux1-dev-fp8-scaled.safetensors'), tensors);
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(dir, 'params.json'));
    const w = loadCheckpoint(dir).transformerWeights();
    expect(w.names().sort()).toEqual(diffusers().transformerWeights().names().sort());
    const s = scales.get('single_blocks.1.linear1.weight')!;
    const l1 = tensors['single_blocks.1.linear1.weight']!.data as Uint8Array;
    expect(w.source('single_transformer_blocks.1.proj_mlp.weight').scale).toBe(Math.fround(s));
    expect(w.readFloat32('single_transformer_blocks.1.proj_mlp.weight')).toEqual(
      Float32Array.from(l1.subarray(3 * 32 * 32), (b) => Math.fround(f8e4m3fnToF32(b) * Math.fround(s))),
    );
    // The final modulation is re-joined from two slices of one scaled tensor: both halves keep the scale.
    const norm = w.source('norm_out.linear.weight');
    const ms = Math.fround(scales.get('final_layer.adaLN_modulation.1.weight')!);
    expect(norm.concat?.map((p) => p.scale)).toEqual([ms, ms]);
  });

  it('scales the engine does not understand are an error naming file, tensor and what to do', () => {
    const dir = folder('bad-scales');
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(dir, 'params.json'));
    const file = path.join(dir, 'flux1-dev-fp8-scaled.safetensors');
    const base = () => scaledFp8(bflFlux()).tensors;
    const cases: [Tensors, RegExp][] = [
      [
        { ...base(), 'txt_in.scale_weight': { dtype: 'float32', shape: [32], data: new Float32Array(32).fill(0.5) } },
        /tensor txt_in\.scale_weight holds scales the engine does not understand \(shape \[32\]: only one scale per tensor \(a scalar\) is supported\)\. Use a plain fp8 e4m3fn file/,
      ],
      [
        { ...base(), 'txt_in.weight_scale': { dtype: 'float32', shape: [], data: Float32Array.of(0.5) } },
        /tensor txt_in\.weight_scale holds scales the engine does not understand \(it is not a ComfyUI scale_weight \/ scale_input\)/,
      ],
      [
        { ...base(), 'txt_in.comfy_quant': { dtype: 'uint8', shape: [4], data: new Uint8Array(4) } },
        /tensor txt_in\.comfy_quant holds scales the engine does not understand/,
      ],
      [
        {
          ...base(),
          'double_blocks.0.img_attn.norm.query_norm.scale_weight': {
            dtype: 'float32',
            shape: [],
            data: Float32Array.of(2),
          },
        },
        /query_norm\.scale_weight holds scales .* \(there is no double_blocks\.0\.img_attn\.norm\.query_norm\.weight for it to scale\)/,
      ],
      [
        {
          ...base(),
          'txt_in.bias': base()['txt_in.bias']!,
          'vector_in.in_layer.scale_weight': { dtype: 'float32', shape: [], data: Float32Array.of(2) },
          'vector_in.in_layer.weight': bflFlux()['vector_in.in_layer.weight']!,
        },
        /tensor vector_in\.in_layer\.scale_weight holds scales .* \(vector_in\.in_layer\.weight is bfloat16, not fp8 e4m3fn\)/,
      ],
      [
        { ...base(), scaled_fp8: { dtype: 'float16', shape: [0], data: new Uint16Array(0) } },
        /tensor scaled_fp8 holds scales .* \(the scaled_fp8 marker is float16, which names no fp8 format/,
      ],
    ];
    for (const [tensors, message] of cases) {
      writeSafetensors(file, tensors);
      expect(() => loadCheckpoint(dir), String(message)).toThrow(message);
    }
    // e5m2 files are refused by the reader, naming the tensor.
    const e5m2 = Buffer.from(readFileSync(file).toString('latin1').replace('"F8_E4M3"', '"F8_E5M2"'), 'latin1');
    writeFileSync(file, e5m2);
    expect(() => loadCheckpoint(dir)).toThrow(
      /has dtype F8_E5M2, which scenewright cannot read .*e5m2 is not supported/,
    );
    // bitsandbytes NF4 files (flux1-dev-bnb-nf4) are named as such.
    writeSafetensors(file, {
      ...bflFlux(),
      'txt_in.weight.absmax': { dtype: 'float32', shape: [4], data: new Float32Array(4) },
    });
    expect(() => loadCheckpoint(dir)).toThrow(
      /^flux1-dev-fp8-scaled\.safetensors: tensor txt_in\.weight\.absmax is bitsandbytes quantization state \(an NF4\/FP4 file such as flux1-dev-bnb-nf4\), which the engine cannot read; use a GGUF/,
    );
  });
});

/** bf16 bits of a value exactly representable in bf16. */
function bf16Bits(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0]! >>> 16;
}

describe('text encoders as single files', () => {
  it('t5xxl_fp8_e4m3fn(_scaled).safetensors: config from the shapes, fp8 weights, scales folded', () => {
    for (const [name, make] of [
      ['t5xxl_fp8_e4m3fn.safetensors', toFp8],
      ['t5xxl_fp8_e4m3fn_scaled.safetensors', scaledFp8],
    ] as const) {
      const dir = withTokenizers(folder(`t5-${name}`));
      for (const f of ['flux.safetensors', 'params.json', 'ae.safetensors'])
        copyFileSync(fixture('tiny-flux-dev-bfl', f), path.join(dir, f));
      const { tensors, scales } = make(t5());
      writeSafetensors(path.join(dir, name), tensors);
      const c = loadCheckpoint(dir).component('text_encoder_2');
      const ref = diffusers().component('text_encoder_2');
      for (const k of [
        'd_model',
        'num_heads',
        'd_kv',
        'd_ff',
        'num_layers',
        'vocab_size',
        'relative_attention_num_buckets',
        'is_gated_act',
      ])
        expect(c.config[k], k).toEqual(ref.config[k]);
      expect(c.weights.names().sort()).toEqual(ref.weights.names().sort());
      const q = 'encoder.block.1.layer.0.SelfAttention.q.weight';
      expect(c.weights.info(q).dtype).toBe('float8e4m3fn');
      const s = scales.get(q)!;
      expect(
        same(
          c.weights.readFloat32(q),
          Float32Array.from(tensors[q]!.data as Uint8Array, (b) => Math.fround(f8e4m3fnToF32(b) * Math.fround(s))),
        ),
      ).toBe(true);
    }
  });

  it('a CLIP whose head count its shapes cannot show needs a config.json beside it', () => {
    const dir = withTokenizers(folder('clip-tiny'));
    for (const f of ['flux.safetensors', 'params.json'])
      copyFileSync(fixture('tiny-flux-dev-bfl', f), path.join(dir, f));
    writeSafetensors(path.join(dir, 'clip_l.safetensors'), {
      ...clip(),
      'text_projection.weight': clip()['text_model.final_layer_norm.weight']!,
    });
    expect(() => loadCheckpoint(dir).component('text_encoder')).toThrow(
      /^clip_l\.safetensors: hidden size 16 is not a multiple of CLIP-L's head size 64, so the head count is unknown; put the file in a text_encoder\/ folder with its config\.json/,
    );
    // A text_encoder/ folder holding only config.json gives the config; the projection head is not a CLIPTextModel weight.
    mkdirSync(path.join(dir, 'text_encoder'));
    copyFileSync(
      fixture('tiny-flux-dev', 'text_encoder', 'config.json'),
      path.join(dir, 'text_encoder', 'config.json'),
    );
    const c = loadCheckpoint(dir).component('text_encoder');
    expect(c.configFile).toBe('text_encoder/config.json');
    expectSameWeights(c.weights, diffusers().component('text_encoder').weights);
  });
});

describe('ComfyUI all-in-one checkpoints', () => {
  const write = (dir: string, extra: Tensors = {}) =>
    writeSafetensors(path.join(dir, 'flux1-dev-fp8-aio.safetensors'), {
      ...prefixed('model.diffusion_model.', toFp8(bflFlux()).tensors),
      ...prefixed('vae.', bflAe()),
      ...prefixed('text_encoders.clip_l.transformer.', clip()),
      ...prefixed('text_encoders.t5xxl.transformer.', scaledFp8(t5()).tensors),
      'text_encoders.clip_l.logit_scale': { dtype: 'float32', shape: [], data: Float32Array.of(4.6) },
      ...extra,
    });

  it('every part from one file, under its prefix; tokenizers beside it; the scheduler from FLUX.1-dev', async () => {
    const dir = withTokenizers(folder('aio'));
    write(dir);
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(dir, 'params.json'));
    mkdirSync(path.join(dir, 'text_encoder'));
    copyFileSync(
      fixture('tiny-flux-dev', 'text_encoder', 'config.json'),
      path.join(dir, 'text_encoder', 'config.json'),
    );
    const ck = loadCheckpoint(dir);
    expect([ck.layout, ck.variant]).toEqual(['single-files', 'dev']);
    expect(ck.transformerConfig).toEqual(diffusers().transformerConfig);
    expect(ck.form?.('transformer')).toEqual({
      file: 'flux1-dev-fp8-aio.safetensors (model.diffusion_model.*)',
      keys: 'comfyui',
      storage: 'BF16 ×48, F8_E4M3 ×36',
    });
    expectSameWeights(ck.component('vae').weights, diffusers().component('vae').weights);
    expectSameWeights(ck.component('text_encoder').weights, diffusers().component('text_encoder').weights);
    expect(ck.component('text_encoder_2').weights.names().sort()).toEqual(
      diffusers().component('text_encoder_2').weights.names().sort(),
    );
    expect(ck.assetFolder('tokenizer_2')).toBe(path.join(dir, 'tokenizer_2'));
    expect(ck.schedulerConfig()).toMatchObject({
      shift: 3.0,
      use_dynamic_shifting: true,
      base_shift: 0.5,
      max_shift: 1.15,
    });
    // The same fp8 transformer as a file of its own gives the same output.
    const alone = folder('aio-transformer-alone');
    writeSafetensors(path.join(alone, 'flux1-dev-fp8.safetensors'), toFp8(bflFlux()).tensors);
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(alone, 'params.json'));
    expect(same(await sample(dir), await sample(alone))).toBe(true);
    expect(same(await decode(dir), await decode(fixture('tiny-flux-dev')))).toBe(true);
  });

  it('tensors of another architecture, and missing tokenizers, are errors', () => {
    const dir = folder('aio-bad');
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(dir, 'params.json'));
    write(dir, {
      'cond_stage_model.transformer.text_model.embeddings.token_embedding.weight':
        clip()['text_model.embeddings.token_embedding.weight']!,
    });
    expect(() => loadCheckpoint(dir)).toThrow(
      /^flux1-dev-fp8-aio\.safetensors: tensors cond_stage_model\.transformer\.text_model\.embeddings\.token_embedding\.weight belong to no part of a FLUX\.1 all-in-one checkpoint/,
    );
    write(dir);
    expect(() => loadCheckpoint(dir).assetFolder('tokenizer')).toThrow(
      /has no tokenizer\/ folder: the CLIP tokenizer \(tokenizer\/\) is not inside weights files\. Copy tokenizer\/ and tokenizer_2\/ from the FLUX\.1-schnell repository/,
    );
  });
});

describe('model sets: one folder, parts in mixed forms', () => {
  /** A diffusers folder (copy of the tiny dev model) with some component folders' weights replaced. */
  function diffusersWith(name: string, replace: Record<string, Record<string, Tensors>>): string {
    const dir = folder(name);
    cpSync(fixture('tiny-flux-dev'), dir, { recursive: true });
    for (const [part, files] of Object.entries(replace)) {
      for (const f of ['diffusion_pytorch_model.safetensors', 'model.safetensors'])
        rmSync(path.join(dir, part, f), { force: true });
      for (const [f, t] of Object.entries(files)) writeSafetensors(path.join(dir, part, f), t);
    }
    return dir;
  }

  it('a diffusers folder whose component folders hold single files in other forms runs like the original', async () => {
    const dir = diffusersWith('mixed', {
      transformer: { 'flux1-dev.safetensors': bflFlux() },
      vae: { 'ae.safetensors': bflAe() },
      text_encoder_2: { 't5xxl_fp8_e4m3fn.safetensors': toFp8(t5()).tensors },
    });
    const ck = loadCheckpoint(dir);
    expect(ck.layout).toBe('diffusers');
    expect(ck.form?.('transformer')).toMatchObject({ file: 'transformer/flux1-dev.safetensors', keys: 'bfl' });
    expect(ck.form?.('text_encoder')).toEqual({
      file: 'text_encoder/model.safetensors',
      keys: 'diffusers',
      storage: 'BF16 ×36',
    });
    expect(ck.component('vae').configFile).toBe('vae/config.json');
    expect(ck.component('text_encoder_2').weights.info('encoder.block.0.layer.0.SelfAttention.q.weight').dtype).toBe(
      'float8e4m3fn',
    );
    expect(same(await sample(dir), await sample(fixture('tiny-flux-dev')))).toBe(true);
  });

  it('a diffusers-named fp8 transformer file: read with transformer/config.json, refused without it', () => {
    const fp8 = toFp8(read(fixture('tiny-flux-dev', 'transformer', 'diffusion_pytorch_model.safetensors'))).tensors;
    const dir = diffusersWith('diffusers-fp8', { transformer: { 'flux1-dev-fp8-diffusers.safetensors': fp8 } });
    const w = loadCheckpoint(dir).transformerWeights();
    expect(w.info('single_transformer_blocks.0.proj_out.weight')).toEqual({
      dtype: 'float8e4m3fn',
      shape: [32, 160],
      file: 'transformer/flux1-dev-fp8-diffusers.safetensors',
    });
    const top = folder('diffusers-fp8-top');
    writeSafetensors(path.join(top, 'flux1-dev-fp8-diffusers.safetensors'), fp8);
    expect(() => loadCheckpoint(top)).toThrow(
      /^flux1-dev-fp8-diffusers\.safetensors: a transformer in diffusers key names needs its config\.json; put both in a transformer\/ folder/,
    );
  });

  it('a plain folder of single files: each part found by its tensors, not its file name', () => {
    const dir = withTokenizers(folder('plain'));
    writeSafetensors(path.join(dir, 'my-model.safetensors'), bflFlux());
    writeSafetensors(path.join(dir, 'decoder.sft'), bflAe());
    writeSafetensors(path.join(dir, 'text.safetensors'), t5());
    writeSafetensors(path.join(dir, 'some-lora.safetensors'), {
      'lora_unet_x.alpha': { dtype: 'float32', shape: [], data: Float32Array.of(1) },
    });
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(dir, 'params.json'));
    const ck = loadCheckpoint(dir);
    expect(ck.form?.('vae').file).toBe('decoder.sft');
    expect(ck.form?.('text_encoder_2').file).toBe('text.safetensors');
    expectSameWeights(ck.transformerWeights(), diffusers().transformerWeights());
    expect(describeForms(ck)).toBe(
      'transformer: my-model.safetensors (bfl, BF16 ×84); text_encoder: not found; text_encoder_2: text.safetensors (transformers, BF16 ×21); vae: decoder.sft (bfl, BF16 ×176)',
    );
    expect(() => ck.component('text_encoder')).toThrow(
      /has no CLIP text encoder: no text_encoder\/ folder, and none of its 4 weights files \(decoder\.sft, my-model\.safetensors, some-lora\.safetensors, text\.safetensors\) holds one/,
    );
  });

  it('two files for one part are ambiguous: both are named', () => {
    const top = folder('two-transformers');
    writeSafetensors(path.join(top, 'flux1-dev.safetensors'), bflFlux());
    writeSafetensors(path.join(top, 'flux1-dev-fp8.safetensors'), toFp8(bflFlux()).tensors);
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(top, 'params.json'));
    expect(() => loadCheckpoint(top)).toThrow(
      /both flux1-dev-fp8\.safetensors and flux1-dev\.safetensors hold a FLUX\.1 transformer, so which one to use is ambiguous; move one of them out of the folder \(or point MODEL_DIR \/ --model at the file to use\)/,
    );
    // Naming the file settles it.
    expect(loadCheckpoint(path.join(top, 'flux1-dev-fp8.safetensors')).form?.('transformer').file).toBe(
      'flux1-dev-fp8.safetensors',
    );
    // …also in a diffusers folder (FLUX.1-dev's repository has flux1-dev.safetensors beside transformer/).
    const repo = folder('hf-repo');
    cpSync(fixture('tiny-flux-dev'), repo, { recursive: true });
    writeSafetensors(path.join(repo, 'flux1-dev.safetensors'), toFp8(bflFlux()).tensors);
    copyFileSync(fixture('tiny-flux-dev-bfl', 'params.json'), path.join(repo, 'params.json'));
    expect(loadCheckpoint(repo).form?.('transformer').file).toBe('transformer/diffusion_pytorch_model.safetensors');
    expect(loadCheckpoint(path.join(repo, 'flux1-dev.safetensors')).form?.('transformer')).toMatchObject({
      file: 'flux1-dev.safetensors',
      keys: 'bfl',
    });
    const dir = diffusersWith('two-in-folder', {
      transformer: { 'flux1-dev.safetensors': bflFlux(), 'flux1-dev-Q4_0.safetensors': bflFlux() },
    });
    expect(() => loadCheckpoint(dir)).toThrow(
      /^transformer\/ holds 2 weights files \(flux1-dev-Q4_0\.safetensors, flux1-dev\.safetensors\), so which one is the FLUX\.1 transformer is ambiguous; keep only one there/,
    );
    const beside = folder('gguf-beside-diffusers');
    cpSync(fixture('tiny-flux-dev'), beside, { recursive: true });
    writeSafetensors(path.join(beside, 'transformer', 'flux1-dev-fp8.safetensors'), toFp8(bflFlux()).tensors);
    expect(() => loadCheckpoint(beside)).toThrow(
      /^transformer\/ holds both diffusion_pytorch_model\.safetensors \(diffusers\) and flux1-dev-fp8\.safetensors, so which one is the FLUX\.1 transformer is ambiguous/,
    );
    const wrong = diffusersWith('wrong-in-folder', { transformer: { 'ae.safetensors': bflAe() } });
    expect(() => loadCheckpoint(wrong)).toThrow(/^transformer\/ae\.safetensors is not a FLUX\.1 transformer/);
  });

  it('a schnell transformer with a dev config, and parts of a model with another width, are errors naming both files', () => {
    const schnell = Object.fromEntries(Object.entries(bflFlux()).filter(([k]) => !k.startsWith('guidance_in.')));
    const dir = diffusersWith('schnell-in-dev', { transformer: { 'flux1-schnell.safetensors': schnell } });
    expect(() => loadCheckpoint(dir).transformerWeights()).toThrow(
      /^transformer\/flux1-schnell\.safetensors: tensor time_text_embed\.guidance_embedder\.linear_1\.weight is missing, but transformer\/config\.json implies it/,
    );
    // A T5 of another width (d_model 16) beside a transformer that takes 32.
    const narrow = Object.fromEntries(
      Object.entries(t5()).map(([k, v]) => {
        const shape = v.shape.map((d) => (d === 32 ? 16 : d));
        const n = shape.reduce((a, b) => a * b, 1);
        return [k, { ...v, shape, data: (v.data as Uint16Array).slice(0, n) }];
      }),
    );
    const mix = diffusersWith('narrow-t5', { text_encoder_2: { 't5xxl_fp16.safetensors': narrow } });
    rmSync(path.join(mix, 'text_encoder_2', 'config.json'));
    // An autoencoder with 8 latent channels (its scaling given in params.json) beside a transformer that takes 4 × 16.
    const ae = bflAe();
    const cut = (t: HostTensor, shape: number[]) => ({
      ...t,
      shape,
      data: (t.data as Uint16Array).slice(
        0,
        shape.reduce((a, b) => a * b, 1),
      ),
    });
    const vaeMix = diffusersWith('narrow-vae', {
      vae: {
        'ae.safetensors': {
          ...ae,
          'decoder.conv_in.weight': cut(ae['decoder.conv_in.weight']!, [64, 8, 3, 3]),
          'encoder.conv_out.weight': cut(ae['encoder.conv_out.weight']!, [16, 64, 3, 3]),
          'encoder.conv_out.bias': cut(ae['encoder.conv_out.bias']!, [16]),
        },
      },
    });
    rmSync(path.join(vaeMix, 'vae', 'config.json'));
    writeFileSync(path.join(vaeMix, 'params.json'), JSON.stringify({ ae: { scale_factor: 0.5, shift_factor: 0 } }));
    expect(() => loadCheckpoint(vaeMix).component('vae')).toThrow(
      /^vae\/ae\.safetensors: 4 × latent channels \(2×2 packed\) is 32, but the transformer transformer\/diffusion_pytorch_model\.safetensors takes 64 at its image input/,
    );
    expect(() => loadCheckpoint(mix).component('text_encoder_2')).toThrow(
      /^text_encoder_2\/t5xxl_fp16\.safetensors: T5 width d_model is 16, but the transformer transformer\/diffusion_pytorch_model\.safetensors takes 32 at its text input \(txt_in \/ context_embedder\): the files are from different models/,
    );
  });
});

describe('a folder of single files paints what the diffusers folder paints', () => {
  it('BFL transformer + ae.safetensors + t5xxl + clip_l + tokenizers, no scheduler/: the same image, bit for bit', async () => {
    const dir = withTokenizers(folder('paints'));
    for (const f of ['flux.safetensors', 'ae.safetensors', 'params.json'])
      copyFileSync(fixture('tiny-flux-dev-bfl', f), path.join(dir, f));
    copyFileSync(
      fixture('tiny-flux-dev', 'text_encoder_2', 'model.safetensors'),
      path.join(dir, 't5xxl_fp16.safetensors'),
    );
    mkdirSync(path.join(dir, 'text_encoder'));
    for (const [from, to] of [
      ['model.safetensors', 'clip_l.safetensors'],
      ['config.json', 'config.json'],
    ] as const)
      copyFileSync(fixture('tiny-flux-dev', 'text_encoder', from), path.join(dir, 'text_encoder', to));
    const open = (modelDir: string) =>
      Engine.open({ modelDir, runtime: cpu, memoryCheck: false, weightsCacheDir: path.join(tmp, 'cache') });
    const files = open(dir);
    const ref = open(fixture('tiny-flux-dev'));
    try {
      expect(files.scheduler).toEqual(ref.scheduler);
      const plan = plainPlan('a red apple on a wooden table', {
        width: 128,
        height: 128,
        steps: 2,
        guidance: 3.5,
        seed: 7,
        textLength: 512,
      });
      const [a, b] = [await files.paint(plan), await ref.paint(plan)];
      expect(same(a.image.data, b.image.data)).toBe(true);
      expect(same(a.latents, b.latents)).toBe(true);
    } finally {
      await Promise.all([files.close(), ref.close()]);
    }
  });
});
