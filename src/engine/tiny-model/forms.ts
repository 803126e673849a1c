/**
 * A written checkpoint rewritten in the forms people download (issue 9), for tests and benchmarks:
 *
 * - fp8: transformer and T5 linear weights as F8_E4M3 (like flux1-dev-fp8 / t5xxl_fp8_e4m3fn), other tensors bf16;
 * - gguf-q8_0 / gguf-q4_0: transformer/flux1-<variant>-<Q>.gguf with BFL key names (as city96's files have them)
 *   and text_encoder_2/t5-v1_1-xxl-encoder-<Q>.gguf with llama.cpp names; 1-D tensors stay F32, as those files do;
 * - int8 / int4: the bf16 files plus the prepared MatMulNBits weights next to them (scenewright-prepared/) and a
 *   scenewright.json that makes that form the folder's default;
 * - fp32: every transformer tensor as F32 (a reference for benchmarks; not a CLI form).
 *
 * Weights come from the folder itself, so a form of a given checkpoint always holds the same values.
 */
import { readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../checkpoint/index.ts';
import { concatFloat32 } from '../float32.ts';
import { float32ToBf16Array, float32ToF8e4m3fnArray } from '../weights/dtype.ts';
import { FOLDER_DEFAULTS_FILE, PREPARED_FOLDER, type WeightForm } from '../weights/forms.ts';
import { encodeRows, writeGguf } from '../weights/gguf/writer.ts';
import { t5HfToGgufName } from '../weights/gguf/t5-names.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import { AS_STORED, LINEAR, PreparedCheckpoint } from '../pipeline/weight-forms.ts';
import { writeSafetensors, type HostTensor } from '../weights/safetensors.ts';
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';

export const TINY_FORMS = ['bf16', 'int8', 'int4', 'fp8', 'gguf-q4_0', 'gguf-q8_0'] as const;
/** Also written for tests (the GGUF affine formats: per-block mins). */
export type TinyForm = (typeof TINY_FORMS)[number] | 'fp32' | 'gguf-q4_1' | 'gguf-q5_1';

/** Replaces a file atomically (written beside it, then renamed). */
function replaceSafetensors(file: string, tensors: Record<string, HostTensor>): void {
  writeSafetensors(`${file}.tmp`, tensors);
  renameSync(`${file}.tmp`, file);
}

function bf16(values: Float32Array, shape: number[]): HostTensor {
  return { dtype: 'bfloat16', shape, data: float32ToBf16Array(values) };
}

/** Every tensor of `w`, linear weights (per `linear`) converted by `convert`, the rest bf16. */
function rewritten(
  w: NamedWeights,
  linear: (n: string, s: number[]) => boolean,
  convert: (v: Float32Array, shape: number[]) => HostTensor,
): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const name of w.names().sort()) {
    const { shape } = w.info(name);
    const v = w.readFloat32(name);
    out[name] = linear(name, shape) ? convert(v, shape) : bf16(v, shape);
  }
  return out;
}

/** Diffusers FluxTransformer2DModel tensors → BFL names (q|k|v and q|k|v|mlp fused, final modulation (shift, scale)). */
export function toBflTransformer(
  w: NamedWeights,
  cfg: FluxTransformerConfig,
): { name: string; shape: number[]; values: Float32Array }[] {
  const out: { name: string; shape: number[]; values: Float32Array }[] = [];
  const read = (n: string) => w.readFloat32(n);
  const put = (name: string, shape: number[], values: Float32Array) => out.push({ name, shape, values });
  const rows = (names: string[]) => {
    const joined = concatFloat32(names.map(read));
    const first = w.info(names[0]!).shape;
    return { shape: [names.reduce((a, n) => a + w.info(n).shape[0]!, 0), ...first.slice(1)], values: joined };
  };
  const both = (bfl: string, names: (s: string) => string[]) => {
    for (const s of ['weight', 'bias']) {
      const r = rows(names(s));
      put(`${bfl}.${s}`, r.shape, r.values);
    }
  };
  const direct: [string, string][] = [
    ['img_in', 'x_embedder'],
    ['txt_in', 'context_embedder'],
    ['time_in.in_layer', 'time_text_embed.timestep_embedder.linear_1'],
    ['time_in.out_layer', 'time_text_embed.timestep_embedder.linear_2'],
    ['vector_in.in_layer', 'time_text_embed.text_embedder.linear_1'],
    ['vector_in.out_layer', 'time_text_embed.text_embedder.linear_2'],
    ['final_layer.linear', 'proj_out'],
  ];
  if (cfg.guidanceEmbeds)
    direct.push(
      ['guidance_in.in_layer', 'time_text_embed.guidance_embedder.linear_1'],
      ['guidance_in.out_layer', 'time_text_embed.guidance_embedder.linear_2'],
    );
  for (const [b, d] of direct) both(b, (s) => [`${d}.${s}`]);
  for (const s of ['weight', 'bias']) {
    // diffusers holds (scale, shift); BFL (shift, scale).
    const m = read(`norm_out.linear.${s}`);
    const shape = w.info(`norm_out.linear.${s}`).shape;
    const half = m.length / 2;
    const swapped = new Float32Array(m.length);
    swapped.set(m.subarray(half), 0);
    swapped.set(m.subarray(0, half), half);
    put(`final_layer.adaLN_modulation.1.${s}`, shape, swapped);
  }
  for (let i = 0; i < cfg.numLayers; i++) {
    const t = `transformer_blocks.${i}`;
    const b = `double_blocks.${i}`;
    const pairs: [string, string][] = [
      ['img_mod.lin', 'norm1.linear'],
      ['txt_mod.lin', 'norm1_context.linear'],
      ['img_attn.proj', 'attn.to_out.0'],
      ['txt_attn.proj', 'attn.to_add_out'],
      ['img_mlp.0', 'ff.net.0.proj'],
      ['img_mlp.2', 'ff.net.2'],
      ['txt_mlp.0', 'ff_context.net.0.proj'],
      ['txt_mlp.2', 'ff_context.net.2'],
    ];
    for (const [x, y] of pairs) both(`${b}.${x}`, (s) => [`${t}.${y}.${s}`]);
    both(`${b}.img_attn.qkv`, (s) => ['to_q', 'to_k', 'to_v'].map((p) => `${t}.attn.${p}.${s}`));
    both(`${b}.txt_attn.qkv`, (s) => ['add_q_proj', 'add_k_proj', 'add_v_proj'].map((p) => `${t}.attn.${p}.${s}`));
    const norms: [string, string][] = [
      ['img_attn.norm.query_norm', 'norm_q'],
      ['img_attn.norm.key_norm', 'norm_k'],
      ['txt_attn.norm.query_norm', 'norm_added_q'],
      ['txt_attn.norm.key_norm', 'norm_added_k'],
    ];
    for (const [x, y] of norms)
      put(`${b}.${x}.scale`, w.info(`${t}.attn.${y}.weight`).shape, read(`${t}.attn.${y}.weight`));
  }
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    const t = `single_transformer_blocks.${i}`;
    const b = `single_blocks.${i}`;
    both(`${b}.modulation.lin`, (s) => [`${t}.norm.linear.${s}`]);
    both(`${b}.linear2`, (s) => [`${t}.proj_out.${s}`]);
    both(`${b}.linear1`, (s) => [...['to_q', 'to_k', 'to_v'].map((p) => `${t}.attn.${p}.${s}`), `${t}.proj_mlp.${s}`]);
    put(`${b}.norm.query_norm.scale`, w.info(`${t}.attn.norm_q.weight`).shape, read(`${t}.attn.norm_q.weight`));
    put(`${b}.norm.key_norm.scale`, w.info(`${t}.attn.norm_k.weight`).shape, read(`${t}.attn.norm_k.weight`));
  }
  return out;
}

/** GGUF tensor of `values`: quantized when 2-D with whole blocks, else F32 (as city96's and llama.cpp's files keep norms). */
type GgufForm = 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_1';
const GGUF_FORMS: Record<string, GgufForm> = {
  'gguf-q8_0': 'Q8_0',
  'gguf-q4_0': 'Q4_0',
  'gguf-q4_1': 'Q4_1',
  'gguf-q5_1': 'Q5_1',
};

function ggufTensor(name: string, shape: number[], values: Float32Array, q: GgufForm) {
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  const format = shape.length === 2 && cols % 32 === 0 ? q : 'F32';
  return { name, format, shape, data: encodeRows(format, values, shape[0]!, cols) };
}

/** Rewrites the checkpoint at `dir` (written by writeTinyModel, bf16) into `form`. */
export function writeWeightsForm(dir: string, form: TinyForm, progress: (m: string) => void = () => {}): void {
  if (form === 'bf16') return;
  const ck = loadCheckpoint(dir);
  const transformerFile = path.join(dir, 'transformer', 'diffusion_pytorch_model.safetensors');
  const t5File = path.join(dir, 'text_encoder_2', 'model.safetensors');
  const tw = ck.transformerWeights();
  const t5 = ck.component('text_encoder_2').weights;
  if (form === 'fp32') {
    progress('transformer: every tensor as F32');
    replaceSafetensors(
      transformerFile,
      rewritten(
        tw,
        () => true,
        (v, shape) => ({ dtype: 'float32', shape, data: v }),
      ),
    );
    return;
  }
  if (form === 'fp8') {
    const fp8 = (v: Float32Array, shape: number[]): HostTensor => ({
      dtype: 'float8e4m3fn',
      shape,
      data: float32ToF8e4m3fnArray(v),
    });
    progress('transformer and T5: linear weights as F8_E4M3');
    replaceSafetensors(transformerFile, rewritten(tw, LINEAR.transformer, fp8));
    replaceSafetensors(t5File, rewritten(t5, LINEAR.text_encoder_2, fp8));
    return;
  }
  const q = GGUF_FORMS[form];
  if (q) {
    progress(`transformer: BFL key names, ${q}`);
    const tensors = toBflTransformer(tw, ck.transformerConfig).map((t) => ggufTensor(t.name, t.shape, t.values, q));
    writeGguf(path.join(dir, 'transformer', `flux1-${ck.variant}-${q}.gguf`), {
      metadata: { 'general.architecture': 'flux', 'general.quantization_version': 2 },
      tensors,
    });
    progress(`T5: llama.cpp names, ${q}`);
    const t5Tensors = t5
      .names()
      .sort()
      .map((n) => {
        const name = t5HfToGgufName(n);
        if (!name) throw new Error(`internal error: no GGUF name for ${n}`);
        return ggufTensor(name, t5.info(n).shape, t5.readFloat32(n), q);
      });
    writeGguf(path.join(dir, 'text_encoder_2', `t5-v1_1-xxl-encoder-${q}.gguf`), {
      metadata: { 'general.architecture': 't5encoder' },
      tensors: t5Tensors,
    });
    rmSync(transformerFile);
    rmSync(t5File);
    return;
  }
  // int8 / int4: prepared next to the model, and the folder's default form.
  if (form !== 'int8' && form !== 'int4') throw new Error(`internal error: no writer for the ${form} form`);
  const weights: WeightForm = form;
  const prepared = new PreparedCheckpoint(
    ck,
    { ...AS_STORED, transformer: weights, text_encoder_2: weights },
    path.join(dir, PREPARED_FOLDER),
  );
  progress(`transformer and T5: ${form} MatMulNBits weights in ${PREPARED_FOLDER}/`);
  for (const w of [prepared.transformerWeights(), prepared.component('text_encoder_2').weights])
    for (const n of w.names()) w.source(n);
  writeFileSync(
    path.join(dir, FOLDER_DEFAULTS_FILE),
    `${JSON.stringify({ weights: `transformer:${form},t5:${form}` }, null, 2)}\n`,
  );
  if (readdirSync(path.join(dir, PREPARED_FOLDER)).length === 0)
    throw new Error('internal error: nothing was prepared');
}
