import path from 'node:path';
import type { TensorSource } from '../onnx/graph.ts';
import { GgufFile } from '../weights/gguf/file.ts';
import { t5GgufName } from '../weights/gguf/t5-names.ts';
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
    const g = new GgufFile(file, label);
    // llama.cpp's T5 converter renames every tensor (city96's t5-v1_1-xxl-encoder-*.gguf); FLUX GGUFs keep BFL's names.
    return g.has('enc.blk.0.attn_q.weight')
      ? new RenamedView(g, (n) => t5GgufName(n, { gated: g.has('enc.blk.0.ffn_gate.weight') }))
      : g;
  }
  const st = new SafetensorsFile(file, label);
  const bnb = st.names().find((n) => BITSANDBYTES.test(n));
  if (bnb) {
    throw new CheckpointError(
      `${label}: tensor ${bnb} is bitsandbytes quantization state (an NF4/FP4 file such as flux1-dev-bnb-nf4), which the engine cannot read; use a GGUF (Q4_0, Q4_K, Q8_0), an fp8 e4m3fn or a bf16 file instead`,
    );
  }
  return ScaledFp8File.wrap(st);
}

/** Tensors that only bitsandbytes' 4-bit files have. */
const BITSANDBYTES = /\.(absmax|quant_map|nested_absmax|nested_quant_map|quant_state\.bitsandbytes__\w+)$/;

/** A file's tensors under other names (`rename` gives undefined for a name it does not know: kept as it is). */
export class RenamedView implements TensorFile {
  readonly label: string;
  readonly realPath: string;
  private readonly toInner = new Map<string, string>();

  constructor(
    private readonly inner: TensorFile,
    rename: (name: string) => string | undefined,
  ) {
    this.label = inner.label;
    this.realPath = inner.realPath;
    for (const n of inner.names()) {
      const to = rename(n) ?? n;
      if (this.toInner.has(to))
        throw new CheckpointError(
          `${inner.label}: tensors ${this.toInner.get(to)} and ${n} both stand for ${to}; the file is damaged or not what its names say`,
        );
      this.toInner.set(to, n);
    }
  }

  private name(name: string): string {
    const inner = this.toInner.get(name);
    if (inner === undefined) throw new CheckpointError(`${this.label}: no tensor stands for ${name}`);
    return inner;
  }

  names(): string[] {
    return [...this.toInner.keys()];
  }

  has(name: string): boolean {
    return this.toInner.has(name);
  }

  info(name: string) {
    return this.inner.info(this.name(name));
  }

  source(name: string): TensorSource {
    return this.inner.source(this.name(name));
  }
}

/**
 * The tensors of `file` under `prefix`, named without it (a ComfyUI all-in-one checkpoint holds each component
 * under its own prefix, e.g. `model.diffusion_model.`).
 */
export class PrefixView implements TensorFile {
  readonly label: string;
  readonly realPath: string;
  private readonly visible: string[];

  constructor(
    private readonly inner: TensorFile,
    readonly prefix: string,
  ) {
    this.label = `${inner.label} (${prefix}*)`;
    this.realPath = inner.realPath;
    this.visible = inner
      .names()
      .filter((n) => n.startsWith(prefix))
      .map((n) => n.slice(prefix.length));
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
export function storageSummary(file: {
  names(): string[];
  info(name: string): { dtype: string; format?: string };
}): string {
  const counts = new Map<string, number>();
  for (const n of file.names()) {
    const i = file.info(n);
    const k = i.format ?? STORAGE_NAMES[i.dtype] ?? i.dtype;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ×${n}`)
    .join(', ');
}

const STORAGE_NAMES: Record<string, string> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float8e4m3fn: 'F8_E4M3',
};
