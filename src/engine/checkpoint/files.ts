import path from 'node:path';
import type { TensorSource } from '../onnx/graph.ts';
import { SafetensorsFile } from '../weights/safetensors.ts';
import type { TensorFile } from '../weights/tensor-file.ts';
import { CheckpointError } from './errors.ts';
import { ScaledFp8File } from './scaled-fp8.ts';

/** The single-file weight formats a model set may hold. */
export const WEIGHT_FILE = /\.(safetensors|sft|gguf)$/i;

/**
 * Opens one weights file as it is: safetensors (ComfyUI's scale tensors folded, see scaled-fp8.ts) or GGUF.
 * `label` is how messages name it.
 */
export function openTensorFile(file: string, label = path.basename(file)): TensorFile {
  if (/\.gguf$/i.test(file)) {
    throw new CheckpointError(`${label}: GGUF files cannot be read by this build yet; use the safetensors (bf16 or fp8) form of this component`);
  }
  return ScaledFp8File.wrap(new SafetensorsFile(file, label));
}

/**
 * The tensors of `file` under `prefix`, named without it (a ComfyUI all-in-one checkpoint holds each component
 * under its own prefix, e.g. `model.diffusion_model.`).
 */
export class PrefixView implements TensorFile {
  readonly label: string;
  readonly realPath: string;
  private readonly visible: string[];

  constructor(private readonly inner: TensorFile, readonly prefix: string) {
    this.label = `${inner.label} (${prefix}*)`;
    this.realPath = inner.realPath;
    this.visible = inner.names().filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  }

  names(): string[] {
    return this.visible;
  }

  has(name: string): boolean {
    return this.inner.has(this.prefix + name);
  }

  info(name: string) {
    return this.inner.info(this.prefix + name);
  }

  source(name: string): TensorSource {
    return this.inner.source(this.prefix + name);
  }
}

/** The storage of a file's tensors for the load log: "F8_E4M3 ×304, BF16 ×476" style counts by dtype or block format. */
export function storageSummary(file: { names(): string[]; info(name: string): { dtype: string; format?: string } }): string {
  const counts = new Map<string, number>();
  for (const n of file.names()) {
    const i = file.info(n);
    const k = i.format ?? STORAGE_NAMES[i.dtype] ?? i.dtype;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ');
}

const STORAGE_NAMES: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float8e4m3fn: 'F8_E4M3' };
