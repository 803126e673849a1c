import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { UserError } from '../../config/errors.ts';
import type { ShapeSpec } from '../checkpoint/check.ts';
import { autoencoderKLShapes, clipTextShapes, t5EncoderShapes } from '../checkpoint/component-specs.ts';
import { fluxConfigFromDiffusers, fluxTransformerShapes } from '../checkpoint/flux-config.ts';
import { MODEL_INDEX, presetConfigs, schedulerConfigJson, type Preset, type Variant } from './presets.ts';
import { planPieces, PIECE_VALUES, writePieces, type Piece, type PieceJob } from './random-tensors.ts';

/**
 * Writes a random FLUX.1 checkpoint in the diffusers folder layout, with the real file names, key names
 * and config formats, bf16 weights and the real tokenizer files. Weights are a pure function of
 * (preset, variant, seed): component k (transformer 1, CLIP 2, T5 3, VAE 4) draws from
 * GaussianNoise(seed · 16 + k) (src/engine/noise.ts), one tensor after another in sorted name order,
 * scaled like the fixtures: biases 0.05·N, 1-D scales 1 + 0.1·N, embeddings 0.5·N, other weights
 * N / √fan_in; then rounded to bf16 (random-tensors.ts). Files are written piece by piece (a few MB at a time,
 * never a whole tensor twice); writeTinyModel draws the pieces on worker threads, bit-identical to makeTinyModel.
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
  /** Values per piece (tests use small pieces to cut small tensors); default PIECE_VALUES. */
  pieceValues?: number;
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
    throw new UserError(
      dir
        ? `--tokenizers ${dir} does not exist. ${help}`
        : `no tokenizer files found (looked for ${DEFAULT_TOKENIZERS}). ${help}`,
      2,
    );
  }
  const layouts: [string, string][] = [
    [path.join(base, 'tokenizer'), path.join(base, 'tokenizer_2')],
    [path.join(base, 'clip-vit-large-patch14'), path.join(base, 't5-v1_1-xxl')],
  ];
  for (const [clip, t5] of layouts) {
    if (!fs.existsSync(clip) && !fs.existsSync(t5)) continue;
    const missing = [...CLIP_FILES.map((f) => path.join(clip, f)), ...T5_FILES.map((f) => path.join(t5, f))].filter(
      (f) => !fs.existsSync(f),
    );
    if (missing.length > 0) throw new UserError(`tokenizer files missing: ${missing.join(', ')}. ${help}`, 2);
    return { clip, t5 };
  }
  throw new UserError(
    `${base} holds neither tokenizer/ + tokenizer_2/ nor clip-vit-large-patch14/ + t5-v1_1-xxl/. ${help}`,
    2,
  );
}

/** A safetensors file of random bf16 tensors: its header bytes and the pieces of its data section. */
interface RandomFile {
  file: string;
  head: Buffer;
  size: number;
  pieces: Piece[];
  summary: ComponentSummary;
}

/** Lays out a bf16 safetensors file: header (offsets from the shapes, names sorted), then each tensor's pieces. */
function layoutRandomSafetensors(file: string, spec: ShapeSpec, seed: number, pieceValues: number): RandomFile {
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
  const head = Buffer.concat([len, Buffer.from(json)]);
  const pieces = planPieces(
    names.map((name) => ({ name, shape: spec.shapes.get(name)! })),
    seed,
    head.length,
    pieceValues,
  );
  const size = head.length + offset;
  return {
    file,
    head,
    size,
    pieces,
    summary: { folder: path.basename(path.dirname(file)), tensors: names.length, parameters, bytes: size },
  };
}

/** Creates the file with its header, at its full size (pieces are then written in place, in any order). */
function startFile(f: RandomFile): number {
  const fd = fs.openSync(f.file, 'w');
  fs.writeSync(fd, f.head, 0, f.head.length, 0);
  fs.ftruncateSync(fd, f.size);
  return fd;
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function prepareOut(out: string, force: boolean): void {
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new UserError(`--out ${out} is a file; give a folder`, 2);
    if (fs.readdirSync(out).length > 0) {
      if (!force)
        throw new UserError(`--out ${out} is not empty; choose a new folder or add --force to replace its contents`, 2);
      for (const entry of fs.readdirSync(out)) fs.rmSync(path.join(out, entry), { recursive: true, force: true });
    }
  }
  fs.mkdirSync(out, { recursive: true });
}

interface Prepared {
  files: RandomFile[];
  tokenizers: { clip: string; t5: string };
}

/** Checks the options, writes the configs, and lays out the weight files (their data is written afterwards). */
function prepare(o: MakeTinyModelOptions): Prepared {
  if (!Number.isSafeInteger(o.seed) || o.seed < 0)
    throw new UserError(`--seed must be a whole number ≥ 0 (got ${o.seed})`, 2);
  const tokenizers = resolveTokenizerSources(o.tokenizers);
  prepareOut(o.out, o.force === true);
  const cfg = presetConfigs(o.preset, o.variant);

  writeJson(path.join(o.out, 'model_index.json'), MODEL_INDEX);
  fs.mkdirSync(path.join(o.out, 'scheduler'));
  writeJson(path.join(o.out, 'scheduler', 'scheduler_config.json'), schedulerConfigJson(o.variant));

  const components: [string, string, Record<string, unknown>, ShapeSpec, number][] = [
    [
      'transformer',
      'diffusion_pytorch_model',
      cfg.transformer,
      fluxTransformerShapes(fluxConfigFromDiffusers(cfg.transformer, 'transformer/config.json')),
      1,
    ],
    ['text_encoder', 'model', cfg.textEncoder, clipTextShapes(cfg.textEncoder, 'text_encoder/config.json'), 2],
    ['text_encoder_2', 'model', cfg.textEncoder2, t5EncoderShapes(cfg.textEncoder2, 'text_encoder_2/config.json'), 3],
    ['vae', 'diffusion_pytorch_model', cfg.vae, autoencoderKLShapes(cfg.vae, 'vae/config.json'), 4],
  ];
  const files = components.map(([folder, stem, config, spec, k]) => {
    const dir = path.join(o.out, folder);
    fs.mkdirSync(dir);
    writeJson(path.join(dir, 'config.json'), config);
    return layoutRandomSafetensors(
      path.join(dir, `${stem}.safetensors`),
      spec,
      o.seed * 16 + k,
      o.pieceValues ?? PIECE_VALUES,
    );
  });
  return { files, tokenizers };
}

function finish(o: MakeTinyModelOptions, p: Prepared): MakeTinyModelResult {
  for (const [folder, src, files] of [
    ['tokenizer', p.tokenizers.clip, [...CLIP_FILES, ...CLIP_OPTIONAL]],
    ['tokenizer_2', p.tokenizers.t5, [...T5_FILES, ...T5_OPTIONAL]],
  ] as const) {
    fs.mkdirSync(path.join(o.out, folder));
    for (const f of files)
      if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(o.out, folder, f));
  }
  o.progress?.(`tokenizers copied from ${p.tokenizers.clip} and ${p.tokenizers.t5}`);
  return { out: o.out, components: p.files.map((f) => f.summary), tokenizers: p.tokenizers };
}

function describe(s: ComponentSummary, ms: number): string {
  return `${s.folder}: ${s.tensors} tensors, ${(s.parameters / 1e6).toFixed(2)} M parameters, ${(s.bytes / 2 ** 20).toFixed(1)} MiB (${Math.round(ms)} ms)`;
}

function writeHere(o: MakeTinyModelOptions, p: Prepared): MakeTinyModelResult {
  for (const f of p.files) {
    const t0 = performance.now();
    const fd = startFile(f);
    try {
      writePieces(fd, f.pieces);
    } finally {
      fs.closeSync(fd);
    }
    o.progress?.(describe(f.summary, performance.now() - t0));
  }
  return finish(o, p);
}

/** Writes the checkpoint on this thread (small presets; bench scripts that need it synchronously). */
export function makeTinyModel(o: MakeTinyModelOptions): MakeTinyModelResult {
  return writeHere(o, prepare(o));
}

// tsx's ESM register() (require.resolve would give its CommonJS build, which cannot register ESM hooks).
const TSX_API = pathToFileURL(
  path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist/esm/api/index.mjs'),
).href;
const WORKER_MODULE = new URL('./writer-worker.ts', import.meta.url).href;

/** A writer thread: the TypeScript worker module loaded through tsx (Node runs no .ts file by itself). */
function startWorker(): Worker {
  const boot = `import(${JSON.stringify(TSX_API)}).then(({ register }) => { register(); return import(${JSON.stringify(WORKER_MODULE)}); });`;
  return new Worker(boot, { eval: true });
}

/**
 * Writes the checkpoint with `workers` threads drawing pieces (default: every core the process may use, at most 8),
 * the same bytes as makeTinyModel. Memory: each thread holds one piece (≈ 24 MiB) at a time.
 */
export async function writeTinyModel(o: MakeTinyModelOptions & { workers?: number }): Promise<MakeTinyModelResult> {
  const workers = Math.max(1, Math.min(o.workers ?? Math.min(os.availableParallelism(), 8), 16));
  const p = prepare(o);
  if (workers === 1) return writeHere(o, p);
  for (const f of p.files) fs.closeSync(startFile(f));
  const jobs: (PieceJob & { index: number })[] = p.files.flatMap((f, index) =>
    f.pieces.map((piece) => ({ file: f.file, piece, index })),
  );
  const left = p.files.map((f) => f.pieces.length);
  const started = p.files.map(() => 0);
  const t0 = performance.now();
  let next = 0;
  const pool = Array.from({ length: workers }, startWorker);
  try {
    await Promise.all(
      pool.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            let current: (typeof jobs)[number] | undefined;
            const send = () => {
              current = jobs[next++];
              if (!current) {
                w.postMessage(null);
                return;
              }
              started[current.index] ||= performance.now();
              w.postMessage({ file: current.file, piece: current.piece } satisfies PieceJob);
            };
            w.on('message', (m: number) => {
              if (m === -1) {
                resolve();
                return;
              }
              const i = current!.index;
              if (--left[i]! === 0) o.progress?.(describe(p.files[i]!.summary, performance.now() - (started[i] || t0)));
              send();
            });
            w.on('error', reject);
            w.on('exit', (code) =>
              code === 0 ? resolve() : reject(new Error(`a checkpoint writer thread stopped (exit ${code})`)),
            );
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return finish(o, p);
}
