import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../config/errors.ts';
import type { ShapeSpec } from '../checkpoint/check.ts';
import { autoencoderKLShapes, clipTextShapes, t5EncoderShapes } from '../checkpoint/component-specs.ts';
import { fluxConfigFromDiffusers, fluxTransformerShapes } from '../checkpoint/flux-config.ts';
import { GaussianNoise } from '../noise.ts';
import { float32ToBf16Array } from '../weights/dtype.ts';
import { MODEL_INDEX, presetConfigs, schedulerConfigJson, type Preset, type Variant } from './presets.ts';

/**
 * Writes a random FLUX.1 checkpoint in the diffusers folder layout, with the real file names, key names
 * and config formats, bf16 weights and the real tokenizer files. Weights are a pure function of
 * (preset, variant, seed): component k (transformer 1, CLIP 2, T5 3, VAE 4) draws from
 * GaussianNoise(seed · 16 + k) (src/engine/noise.ts), one tensor after another in sorted name order,
 * scaled like the fixtures: biases 0.05·N, 1-D scales 1 + 0.1·N, embeddings 0.5·N, other weights
 * N / √fan_in; then rounded to bf16.
 */
export interface MakeTinyModelOptions {
  out: string;
  preset: Preset;
  variant: Variant;
  seed: number;
  /** A folder with the tokenizer files (see resolveTokenizerSources). */
  tokenizers?: string;
  /** Replace the contents of a non-empty `out`. */
  force?: boolean;
  progress?: (message: string) => void;
}

export interface ComponentSummary {
  folder: string;
  tensors: number;
  parameters: number;
  bytes: number;
}

export interface MakeTinyModelResult {
  out: string;
  components: ComponentSummary[];
  tokenizers: { clip: string; t5: string };
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** Where the repository's test fixtures keep the tokenizers (present in development and CI only). */
export const DEFAULT_TOKENIZERS = path.resolve(repoRoot, '../shared/fixtures/tokenizers');

const CLIP_FILES = ['vocab.json', 'merges.txt'];
const CLIP_OPTIONAL = ['special_tokens_map.json', 'tokenizer_config.json'];
const T5_FILES = ['tokenizer.json'];
const T5_OPTIONAL = ['special_tokens_map.json', 'tokenizer_config.json', 'spiece.model'];

/**
 * Finds the CLIP and T5 tokenizer folders under `dir`, which may be a FLUX.1 checkpoint (tokenizer/ and
 * tokenizer_2/) or a folder with clip-vit-large-patch14/ and t5-v1_1-xxl/ (the fixtures' layout).
 */
export function resolveTokenizerSources(dir: string | undefined): { clip: string; t5: string } {
  const help =
    'make-tiny-model copies the real tokenizers (the random model uses their vocabularies). Pass --tokenizers <dir> ' +
    'where <dir> is a downloaded FLUX.1-dev or FLUX.1-schnell folder (it reads tokenizer/vocab.json, tokenizer/merges.txt ' +
    'and tokenizer_2/tokenizer.json), or a folder holding clip-vit-large-patch14/{vocab.json,merges.txt} and t5-v1_1-xxl/tokenizer.json.';
  const base = dir ?? DEFAULT_TOKENIZERS;
  if (!fs.existsSync(base)) {
    throw new UserError(dir ? `--tokenizers ${dir} does not exist. ${help}` : `no tokenizer files found (looked for ${DEFAULT_TOKENIZERS}). ${help}`, 2);
  }
  const layouts: [string, string][] = [
    [path.join(base, 'tokenizer'), path.join(base, 'tokenizer_2')],
    [path.join(base, 'clip-vit-large-patch14'), path.join(base, 't5-v1_1-xxl')],
  ];
  for (const [clip, t5] of layouts) {
    if (!fs.existsSync(clip) && !fs.existsSync(t5)) continue;
    const missing = [...CLIP_FILES.map((f) => path.join(clip, f)), ...T5_FILES.map((f) => path.join(t5, f))].filter((f) => !fs.existsSync(f));
    if (missing.length > 0) throw new UserError(`tokenizer files missing: ${missing.join(', ')}. ${help}`, 2);
    return { clip, t5 };
  }
  throw new UserError(`${base} holds neither tokenizer/ + tokenizer_2/ nor clip-vit-large-patch14/ + t5-v1_1-xxl/. ${help}`, 2);
}

type InitKind = 'bias' | 'scale' | 'embedding' | 'weight';

function initKind(name: string, shape: number[]): InitKind {
  if (name.endsWith('.bias')) return 'bias';
  if (name === 'shared.weight' || name.endsWith('embedding.weight') || name.includes('relative_attention_bias')) return 'embedding';
  if (shape.length === 1) return 'scale';
  return 'weight';
}

function initialise(values: Float32Array, kind: InitKind, shape: number[]): void {
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const [mul, add] = kind === 'bias' ? [0.05, 0] : kind === 'scale' ? [0.1, 1] : kind === 'embedding' ? [0.5, 0] : [1 / Math.sqrt(fanIn), 0];
  for (let i = 0; i < values.length; i++) values[i] = values[i]! * mul + add;
}

/** Streams a bf16 safetensors file: header first (offsets from the shapes), then each tensor as it is drawn. */
function writeRandomSafetensors(file: string, spec: ShapeSpec, seed: number): ComponentSummary {
  const names = [...spec.shapes.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  let parameters = 0;
  for (const name of names) {
    const shape = spec.shapes.get(name)!;
    const count = shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + 2 * count] };
    offset += 2 * count;
    parameters += count;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    const noise = new GaussianNoise(seed);
    for (const name of names) {
      const shape = spec.shapes.get(name)!;
      const values = noise.next(shape);
      initialise(values, initKind(name, shape), shape);
      const bits = float32ToBf16Array(values);
      fs.writeSync(fd, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
    }
  } finally {
    fs.closeSync(fd);
  }
  return { folder: path.basename(path.dirname(file)), tensors: names.length, parameters, bytes: 8 + Buffer.byteLength(json) + offset };
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function prepareOut(out: string, force: boolean): void {
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new UserError(`--out ${out} is a file; give a folder`, 2);
    if (fs.readdirSync(out).length > 0) {
      if (!force) throw new UserError(`--out ${out} is not empty; choose a new folder or add --force to replace its contents`, 2);
      for (const entry of fs.readdirSync(out)) fs.rmSync(path.join(out, entry), { recursive: true, force: true });
    }
  }
  fs.mkdirSync(out, { recursive: true });
}

export function makeTinyModel(o: MakeTinyModelOptions): MakeTinyModelResult {
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw new UserError(`--seed must be a whole number ≥ 0 (got ${o.seed})`, 2);
  const tokenizers = resolveTokenizerSources(o.tokenizers);
  prepareOut(o.out, o.force === true);
  const note = o.progress ?? (() => {});
  const cfg = presetConfigs(o.preset, o.variant);

  writeJson(path.join(o.out, 'model_index.json'), MODEL_INDEX);
  fs.mkdirSync(path.join(o.out, 'scheduler'));
  writeJson(path.join(o.out, 'scheduler', 'scheduler_config.json'), schedulerConfigJson(o.variant));

  const components: [string, string, Record<string, unknown>, ShapeSpec, number][] = [
    ['transformer', 'diffusion_pytorch_model', cfg.transformer, fluxTransformerShapes(fluxConfigFromDiffusers(cfg.transformer, 'transformer/config.json')), 1],
    ['text_encoder', 'model', cfg.textEncoder, clipTextShapes(cfg.textEncoder, 'text_encoder/config.json'), 2],
    ['text_encoder_2', 'model', cfg.textEncoder2, t5EncoderShapes(cfg.textEncoder2, 'text_encoder_2/config.json'), 3],
    ['vae', 'diffusion_pytorch_model', cfg.vae, autoencoderKLShapes(cfg.vae, 'vae/config.json'), 4],
  ];
  const summaries: ComponentSummary[] = [];
  for (const [folder, stem, config, spec, k] of components) {
    const dir = path.join(o.out, folder);
    fs.mkdirSync(dir);
    writeJson(path.join(dir, 'config.json'), config);
    const t0 = Date.now();
    const s = writeRandomSafetensors(path.join(dir, `${stem}.safetensors`), spec, o.seed * 16 + k);
    summaries.push(s);
    note(`${folder}: ${s.tensors} tensors, ${(s.parameters / 1e6).toFixed(2)} M parameters, ${(s.bytes / 2 ** 20).toFixed(1)} MiB (${Date.now() - t0} ms)`);
  }

  for (const [folder, src, files] of [
    ['tokenizer', tokenizers.clip, [...CLIP_FILES, ...CLIP_OPTIONAL]],
    ['tokenizer_2', tokenizers.t5, [...T5_FILES, ...T5_OPTIONAL]],
  ] as const) {
    fs.mkdirSync(path.join(o.out, folder));
    for (const f of files) if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(o.out, folder, f));
  }
  note(`tokenizers copied from ${tokenizers.clip} and ${tokenizers.t5}`);
  return { out: o.out, components: summaries, tokenizers };
}
