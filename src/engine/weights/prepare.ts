/**
 * Weights preparation: turns a component's weights as the files hold them into what the graphs read.
 *
 * - Block-quantized tensors (GGUF) are repacked into MatMulNBits form: exactly, the same values (gguf/to-nbits.ts).
 * - `WEIGHTS=int8|int4` quantizes a float (bf16, fp16, fp32, fp8) checkpoint's linear layers at load.
 * - `WEIGHTS=bf16` dequantizes block formats back to 16 bits.
 * Plain float and fp8 tensors that stay as they are keep pointing into the user's file (nothing is copied).
 *
 * ONNX Runtime reads every initializer from a file (a model above 2 GB cannot hold them inline, and in-memory
 * external data must then hold every file, the user's too), so prepared tensors are written once to a cache file
 * in the weights cache folder (never into the model folder) and found again by a key over their sources'
 * identities; its content hash is checked at every load, so a damaged cache is rebuilt, never read.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { UserError } from '../../config/errors.ts';
import { childLogger } from '../../log/logger.ts';
import { DTYPE_BYTES, type DType, type NBitsParts, type TensorSource } from '../onnx/graph.ts';
import { float32ToBf16Array } from './dtype.ts';
import type { WeightForm } from './forms.ts';
import { naturalForm, toNBitsFromSource } from './encoded.ts';
import type { NamedWeights } from './named-weights.ts';
import { blockFor, concatNBitsRows, quantizeNBits, type NBitsHost } from './nbits.ts';
import { sourceToFloat32 } from './tensor-source.ts';

export type { WeightForm } from './forms.ts';

/** Bumped when a prepared tensor's bytes would change for the same source (invalidates caches). */
const PREPARE_VERSION = 1;

const log = childLogger('weights');

export interface PrepareOptions {
  /** The component's name in messages and cache file names, e.g. "transformer". */
  component: string;
  form: WeightForm;
  cacheDir: string;
  /** Folders searched first for an already prepared cache, never written (the model folder's own). */
  readOnlyCacheDirs?: string[];
  /** Which tensors are linear layers' [out, in] weights (the only ones quantized). */
  isLinear: (name: string, shape: number[]) => boolean;
  /** Embedding tables read by row (Graph.embedding): a block-quantized one stays quantized, repacked exactly. */
  isEmbedding?: (name: string) => boolean;
}

/** What happens to one tensor. */
type Action =
  | { kind: 'keep' }
  | { kind: 'repack' } // block format → MatMulNBits, exact
  | { kind: 'quantize'; bits: 4 | 8; block: number } // float → MatMulNBits
  | { kind: 'bf16' }; // block format → dense bf16

/** A summary for logs, benches and the memory check. */
export interface PreparedSummary {
  component: string;
  form: WeightForm;
  /** Tensors per action. */
  counts: Record<Action['kind'], number>;
  /** Bytes the weights occupy once loaded, given the compute type's width for dense tensors. */
  residentBytes: (computeBytes: number) => number;
  /** Logical parameters. */
  parameters: number;
  /** The cache file, when one is used. */
  cacheFile?: string;
}

const elements = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function leaves(src: TensorSource): TensorSource[] {
  return src.concat ? src.concat.flatMap(leaves) : [src];
}

/** Scales end up in the compute type (a folded Cast below float32); mins stay float32 (their product is float32). */
function nbitsBytes(
  bits: number,
  block: number,
  rows: number,
  cols: number,
  withMins: boolean,
  withZeros: boolean,
  computeBytes: number,
): number {
  const kb = cols / block;
  return (
    (rows * cols * bits) / 8 +
    rows * kb * Math.min(4, computeBytes) +
    (withMins ? rows * kb * 4 : 0) +
    (withZeros ? rows * Math.ceil((kb * bits) / 8) : 0)
  );
}

/** Decides what each tensor becomes. Pure: reads no weight bytes. */
function decide(name: string, src: TensorSource, o: PrepareOptions): Action {
  const parts = leaves(src);
  const encoded = parts.some((p) => p.encoded);
  const linear = src.shape.length === 2 && o.isLinear(name, src.shape);
  if (encoded) {
    if (!parts.every((p) => p.encoded))
      throw new UserError(`${name}: joins block-quantized and plain parts (internal mapping error)`);
    if (o.form !== 'bf16' && src.shape.length === 2 && o.isEmbedding?.(name)) return { kind: 'repack' };
    if (!linear || o.form === 'bf16') return { kind: 'bf16' };
    const natural = Math.max(...parts.map((p) => naturalForm(p.encoded!.format).bits));
    if (o.form === 'int4' && natural > 4) return { kind: 'quantize', bits: 4, block: blockFor(src.shape[1]!) ?? 32 };
    return { kind: 'repack' };
  }
  if (!linear || (o.form !== 'int8' && o.form !== 'int4')) return { kind: 'keep' };
  const block = blockFor(src.shape[1]!);
  if (block === undefined) return { kind: 'keep' };
  return { kind: 'quantize', bits: o.form === 'int8' ? 8 : 4, block };
}

/** Bytes a kept tensor holds once loaded: fp8 stays 1 byte; 16/32-bit floats are cast to the compute type at load. */
function keptBytes(src: TensorSource, computeBytes: number): number {
  return leaves(src).reduce(
    (n, p) =>
      n +
      elements(p.shape) *
        (p.dtype === 'float8e4m3fn'
          ? 1
          : p.dtype === 'float32' || p.dtype === 'float16' || p.dtype === 'bfloat16'
            ? computeBytes
            : DTYPE_BYTES[p.dtype]),
    0,
  );
}

/** Identity of a source for the cache key: where its bytes are and the file's size and time, or its bytes. */
function identity(src: TensorSource, h: ReturnType<typeof createHash>): void {
  h.update(`${src.dtype}|${src.shape.join(',')}|${src.scale ?? ''}|`);
  if (src.concat) {
    h.update(`concat${src.concat.length}[`);
    for (const p of src.concat) identity(p, h);
    h.update(']');
    return;
  }
  const ext = src.encoded?.external ?? src.external;
  if (ext) {
    // The file's name, not its path: a model folder that is moved (mv keeps times) keeps its prepared weights.
    const st = statSync(ext.file);
    h.update(
      `${src.encoded?.format ?? 'plain'}|${path.basename(ext.file)}|${ext.offset}|${ext.length}|${st.size}|${Math.round(st.mtimeMs)}\n`,
    );
  } else if (src.data) {
    h.update(src.data);
  }
}

interface CacheEntry {
  dtype: DType;
  shape: number[];
  /** Dense tensors (bf16). */
  dense?: [number, number];
  nbits?: {
    bits: 4 | 8;
    block: number;
    packed: [number, number];
    scales: [number, number];
    zeros?: [number, number];
    mins?: [number, number];
  };
}
interface CacheIndex {
  version: number;
  component: string;
  form: WeightForm;
  bytes: number;
  sha256: string;
  tensors: Record<string, CacheEntry>;
}

/** Host MatMulNBits form of a source: repacked (exact) or quantized from its float values. */
function hostNBits(src: TensorSource, a: Action): NBitsHost {
  if (a.kind === 'repack') {
    const parts = leaves(src).map(toNBitsFromSource);
    return parts.length === 1 ? parts[0]! : concatNBitsRows(parts);
  }
  if (a.kind !== 'quantize') throw new Error('internal error: hostNBits on a dense action');
  const [rows, cols] = src.shape as [number, number];
  return quantizeNBits(sourceToFloat32(src), rows, cols, a.bits, a.block);
}

/** Streams the prepared tensors into `<file>.tmp`, returning the index; aligned to 64 bytes per part. */
function writeCache(file: string, work: [string, TensorSource, Action][], o: PrepareOptions): CacheIndex {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  const hash = createHash('sha256');
  let offset = 0;
  const put = (bytes: Uint8Array): [number, number] => {
    const pad = (64 - (offset % 64)) % 64;
    if (pad) {
      const zeros = new Uint8Array(pad);
      writeSync(fd, zeros);
      hash.update(zeros);
      offset += pad;
    }
    const at = offset;
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    hash.update(bytes);
    offset += bytes.length;
    return [at, bytes.length];
  };
  const asBytes = (a: Float32Array | Uint8Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tensors: Record<string, CacheEntry> = {};
  let lastLog = Date.now();
  try {
    for (const [i, [name, src, a]] of work.entries()) {
      if (a.kind === 'bf16') {
        tensors[name] = {
          dtype: 'bfloat16',
          shape: src.shape,
          dense: put(asBytes(float32ToBf16Array(sourceToFloat32(src)))),
        };
      } else {
        const h = hostNBits(src, a);
        tensors[name] = {
          dtype: 'float32',
          shape: src.shape,
          nbits: {
            bits: h.bits,
            block: h.block,
            packed: put(h.packed),
            scales: put(asBytes(h.scales)),
            ...(h.zeros ? { zeros: put(h.zeros) } : {}),
            ...(h.mins ? { mins: put(asBytes(h.mins)) } : {}),
          },
        };
      }
      if (Date.now() - lastLog > 5000 || i === work.length - 1) {
        lastLog = Date.now();
        log.info(
          { part: o.component, done: i + 1, of: work.length },
          `preparing ${o.component} weights (${o.form}): ${i + 1}/${work.length} tensors`,
        );
      }
    }
  } finally {
    closeSync(fd);
  }
  return {
    version: PREPARE_VERSION,
    component: o.component,
    form: o.form,
    bytes: offset,
    sha256: hash.digest('hex'),
    tensors,
  };
}

function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(8 * 2 ** 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The index of a valid cache file, or undefined (missing, other version, wrong size or content). */
function readCache(indexFile: string, dataFile: string): CacheIndex | undefined {
  if (!existsSync(indexFile) || !existsSync(dataFile)) return undefined;
  try {
    const idx = JSON.parse(readFileSync(indexFile, 'utf8')) as CacheIndex;
    if (idx.version !== PREPARE_VERSION) return undefined;
    const fd = openSync(dataFile, 'r');
    const size = fstatSync(fd).size;
    closeSync(fd);
    if (size !== idx.bytes) {
      log.warn({ file: dataFile, size, expected: idx.bytes }, 'weights cache file has the wrong size; rebuilding it');
      return undefined;
    }
    if (sha256File(dataFile) !== idx.sha256) {
      log.warn({ file: dataFile }, 'weights cache file does not match its hash; rebuilding it');
      return undefined;
    }
    return idx;
  } catch {
    return undefined;
  }
}

/** A component's weights after preparation, under the same names. Work happens on first use of a prepared tensor. */
export class PreparedWeights implements NamedWeights {
  readonly label: string;
  private readonly actions = new Map<string, Action>();
  private prepared?: Map<string, TensorSource>;
  private readonly cacheBase: string;
  private readonly key: string;

  constructor(
    private readonly inner: NamedWeights,
    private readonly o: PrepareOptions,
  ) {
    this.label = inner.label;
    const h = createHash('sha256');
    h.update(`v${PREPARE_VERSION}|${o.component}|${o.form}\n`);
    for (const name of inner.names()) {
      const src = inner.source(name);
      const a = decide(name, src, o);
      this.actions.set(name, a);
      if (a.kind !== 'keep') {
        h.update(`${name}|${JSON.stringify(a)}|`);
        identity(src, h);
      }
    }
    this.key = `${o.component}-${o.form}-${h.digest('hex').slice(0, 16)}`;
    this.cacheBase = path.join(o.cacheDir, this.key);
  }

  names(): string[] {
    return this.inner.names();
  }

  has(name: string): boolean {
    return this.inner.has(name);
  }

  info(name: string) {
    return this.inner.info(name);
  }

  source(name: string): TensorSource {
    const a = this.actions.get(name);
    if (!a || a.kind === 'keep') return this.inner.source(name);
    return this.load().get(name)!;
  }

  readFloat32(name: string): Float32Array {
    return sourceToFloat32(this.source(name));
  }

  get summary(): PreparedSummary {
    const counts = { keep: 0, repack: 0, quantize: 0, bf16: 0 };
    let parameters = 0;
    const sizes: ((c: number) => number)[] = [];
    for (const [name, a] of this.actions) {
      counts[a.kind]++;
      const src = this.inner.source(name);
      parameters += elements(src.shape);
      const [rows, cols] = src.shape as [number, number];
      if (a.kind === 'keep') sizes.push((c) => keptBytes(src, c));
      else if (a.kind === 'bf16') sizes.push((c) => elements(src.shape) * c);
      else if (a.kind === 'quantize') sizes.push((c) => nbitsBytes(a.bits, a.block, rows, cols, false, false, c));
      else {
        const f = naturalForm(leaves(src)[0]!.encoded!.format);
        sizes.push((c) => nbitsBytes(f.bits, f.block, rows, cols, f.affine, f.affine, c));
      }
    }
    const work = counts.repack + counts.quantize + counts.bf16;
    return {
      component: this.o.component,
      form: this.o.form,
      counts,
      parameters,
      residentBytes: (c) => sizes.reduce((n, f) => n + f(c), 0),
      ...(work > 0 ? { cacheFile: `${this.cacheBase}.bin` } : {}),
    };
  }

  /** Reads the cache, or builds it: repacks, quantizes and dequantizes every tensor that needs it, once. */
  private load(): Map<string, TensorSource> {
    if (this.prepared) return this.prepared;
    let dataFile = `${this.cacheBase}.bin`;
    let idx: CacheIndex | undefined;
    for (const dir of this.o.readOnlyCacheDirs ?? []) {
      const base = path.join(dir, this.key);
      idx = readCache(`${base}.json`, `${base}.bin`);
      if (idx) {
        dataFile = `${base}.bin`;
        break;
      }
    }
    const indexFile = `${this.cacheBase}.json`;
    idx ??= readCache(indexFile, dataFile);
    const kept = [...this.actions].filter(
      ([n, a]) =>
        a.kind === 'keep' &&
        (this.o.form === 'int8' || this.o.form === 'int4') &&
        this.inner.info(n).shape.length === 2 &&
        this.o.isLinear(n, this.inner.info(n).shape),
    );
    if (kept.length > 0) {
      log.warn(
        { part: this.o.component, tensors: kept.map(([n]) => n).slice(0, 5), count: kept.length },
        `${this.o.component}: ${kept.length} linear weight(s) stay as stored in ${this.o.form} form: their input width is not a multiple of 16 (MatMulNBits blocks)`,
      );
    }
    if (idx) {
      log.info(
        { part: this.o.component, file: dataFile },
        `${this.o.component}: prepared weights (${this.o.form}) read from the cache`,
      );
    } else {
      const work = [...this.actions]
        .filter(([, a]) => a.kind !== 'keep')
        .map(([n, a]) => [n, this.inner.source(n), a] as [string, TensorSource, Action]);
      const s = this.summary.counts;
      log.info(
        { part: this.o.component, ...s, cacheDir: this.o.cacheDir },
        `${this.o.component}: preparing weights (${this.o.form}): ${s.repack} repacked exactly, ${s.quantize} quantized, ${s.bf16} dequantized to bf16; written once to ${this.o.cacheDir}`,
      );
      try {
        mkdirSync(this.o.cacheDir, { recursive: true });
        idx = writeCache(dataFile, work, this.o);
        renameSync(`${dataFile}.tmp`, dataFile);
        writeFileSync(indexFile, JSON.stringify(idx));
      } catch (e) {
        if (existsSync(`${dataFile}.tmp`)) rmSync(`${dataFile}.tmp`, { force: true });
        const err = e as NodeJS.ErrnoException;
        if (['ENOSPC', 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST'].includes(err.code ?? '')) {
          throw new UserError(
            `${this.o.component}: cannot write prepared weights to ${this.o.cacheDir} (${err.code}); set WEIGHTS_CACHE_DIR to a writable folder with room for about ${(this.summary.residentBytes(2) / 2 ** 30).toFixed(1)} GiB`,
          );
        }
        throw e;
      }
    }
    const file = path.resolve(dataFile);
    const ext = (r: [number, number]) => ({ file, offset: r[0], length: r[1] });
    const out = new Map<string, TensorSource>();
    for (const [name, e] of Object.entries(idx.tensors)) {
      if (e.dense) {
        out.set(name, { dtype: e.dtype, shape: e.shape, external: ext(e.dense) });
        continue;
      }
      const q = e.nbits!;
      const [rows, cols] = e.shape as [number, number];
      const kb = cols / q.block;
      const nbits: NBitsParts = {
        bits: q.bits,
        block: q.block,
        packed: { dtype: 'uint8', shape: [rows, kb, (q.block * q.bits) / 8], external: ext(q.packed) },
        scales: { dtype: 'float32', shape: [rows, kb], external: ext(q.scales) },
        ...(q.zeros
          ? { zeros: { dtype: 'uint8', shape: [rows, Math.ceil((kb * q.bits) / 8)], external: ext(q.zeros) } }
          : {}),
        ...(q.mins ? { mins: { dtype: 'float32', shape: [rows, kb], external: ext(q.mins) } } : {}),
      };
      out.set(name, { dtype: 'float32', shape: e.shape, nbits });
    }
    for (const [name, a] of this.actions)
      if (a.kind !== 'keep' && !out.has(name))
        throw new Error(`internal error: the weights cache ${dataFile} lacks ${name}`);
    this.prepared = out;
    return out;
  }
}
