/**
 * The engine's LoRA files in memory: read once per file version and kept while they fit, so switching styles
 * between jobs costs a table build, not a file read (bench/lora.ts measures it). Style names are resolved to
 * paths before the engine sees a job; here `name` is a path.
 */
import { statSync } from 'node:fs';
import { UserError } from '../../config/errors.ts';
import { childLogger } from '../../log/logger.ts';
import type { LoraRef } from '../../rag/params.ts';
import type { LoraFile } from './types.ts';
import { readLoraFile, type LoraTarget } from './files/read.ts';

const log = childLogger('lora');

/** What a LoRA reader needs of the model: its label (for messages) and each linear's [out, in]. */
export type LoraModel = LoraTarget;

/** Reads and maps one LoRA file (default lora/files' readLoraFile; tests may serve LoraFile objects). */
export type LoraLoader = (path: string, target: LoraModel) => Promise<LoraFile>;

/** Bytes of LoRA factors kept between jobs (least recently used files are dropped first). */
export const DEFAULT_LORA_CACHE_BYTES = 2 * 2 ** 30;

function bytesOf(f: LoraFile): number {
  let n = 0;
  const seen = new Set<Float32Array>();
  for (const l of f.layers.values())
    for (const a of [l.down, l.up])
      if (!seen.has(a)) {
        seen.add(a);
        n += a.byteLength;
      }
  return n;
}

export class LoraLibrary {
  private readonly files = new Map<string, { file: Promise<LoraFile>; bytes: number }>();
  /** Files read from disk so far (a cache hit reads none), for tests and benchmarks. */
  reads = 0;

  constructor(
    readonly model: LoraModel,
    private readonly loader: LoraLoader = readLoraFile,
    private readonly maxBytes = DEFAULT_LORA_CACHE_BYTES,
  ) {}

  /** The files of `refs`, in order; a ref's sha256, when given, must be the file's. */
  async load(refs: LoraRef[]): Promise<LoraFile[]> {
    const keys = refs.map((r) => this.keyOf(r.name));
    const files = await Promise.all(refs.map((r, i) => this.get(r.name, keys[i]!)));
    refs.forEach((r, i) => {
      const f = files[i]!;
      if (r.sha256 && r.sha256 !== f.sha256)
        throw new UserError(
          `style ${r.name}: the job was made with the file of SHA-256 ${r.sha256.slice(0, 12)}…, this one is ${f.sha256.slice(0, 12)}…; install the same file, or repaint with the current one`,
        );
    });
    this.evict(new Set(keys));
    return files;
  }

  /** A file's version: its path, size and modification time (cheap; the reader hashes the content). */
  private keyOf(path: string): string {
    let st;
    try {
      st = statSync(path);
    } catch {
      throw new UserError(`style file ${path} does not exist (or cannot be read); check LORA_DIR and the style name`);
    }
    return `${path}\u0000${st.size}\u0000${st.mtimeMs}`;
  }

  private get(path: string, key: string): Promise<LoraFile> {
    const hit = this.files.get(key);
    if (hit) {
      // Most recently used last.
      this.files.delete(key);
      this.files.set(key, hit);
      return hit.file;
    }
    this.reads++;
    const entry = { file: this.loader(path, this.model), bytes: 0 };
    this.files.set(key, entry);
    entry.file.then(
      (f) => {
        entry.bytes = bytesOf(f);
        for (const w of f.warnings) log.warn({ file: path, warning: w }, 'LoRA file');
      },
      () => this.files.delete(key),
    );
    return entry.file;
  }

  private evict(keep: Set<string>): void {
    let total = [...this.files.values()].reduce((n, e) => n + e.bytes, 0);
    for (const [key, e] of this.files) {
      if (total <= this.maxBytes) break;
      if (keep.has(key)) continue;
      this.files.delete(key);
      total -= e.bytes;
    }
  }
}
