/**
 * Does the model fit? Checked at warm-up, before the first weight is loaded, so that a FLUX.1 too big for the
 * device is a clear message with numbers instead of an allocation failure (or the machine swapping) minutes into
 * loading. The need is the weights of each component in the precision the engine computes it in, plus an estimate
 * of a 1024² RAG step's activations; the free memory is the GPU's (nvidia-smi) on CUDA and the memory this process
 * may still use on CPU (MemAvailable, capped by a cgroup limit).
 */
import { decodeActivationBytes } from '../graphs/vae-tiled.ts';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { UserError } from '../../config/errors.ts';
import { DTYPE_BYTES, type FloatType } from '../onnx/graph.ts';
import type { FluxCheckpoint } from '../checkpoint/types.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import { PreparedWeights } from '../weights/prepare.ts';
import type { ExecutionProvider } from '../runtime/session.ts';

export interface MemoryNeed {
  parts: { what: string; bytes: number }[];
  total: number;
}

const GiB = 2 ** 30;
const gib = (b: number) => `${(b / GiB).toFixed(1)} GiB`;

function parameters(w: NamedWeights): number {
  return w.names().reduce((n, name) => n + w.info(name).shape.reduce((a, b) => a * b, 1), 0);
}

/** Resident bytes of a component whose dense tensors compute in `bytes`-wide floats (quantized ones as they stay). */
function weightBytes(w: NamedWeights, bytes: number): number {
  return w instanceof PreparedWeights ? w.summary.residentBytes(bytes) : parameters(w) * bytes;
}

function formLabel(w: NamedWeights, computeType: string): string {
  const form = w instanceof PreparedWeights ? w.summary.form : 'auto';
  return form === 'auto' ? `in ${computeType}` : `${form}, computing in ${computeType}`;
}

/** What the engine holds for this checkpoint: each component once, in its compute precision, plus activations. */
export function memoryNeed(ck: FluxCheckpoint, computeType: FloatType): MemoryNeed {
  const cfg = ck.transformerConfig;
  const bytes = DTYPE_BYTES[computeType];
  // T5 computes in the transformer's type (bf16 on CUDA, fp16 with clamps on WebGPU); CLIP and the VAE in float32.
  const t5Bytes = bytes;
  // A 1024² RAG step with the repaint pass and 4 cells: 4096 image + 512 text tokens per full stream, about 24
  // values of width `inner` alive per token at the widest point of a block (MLP hidden state, Q/K/V, residuals).
  const tokens = 2 * (4096 + 512) + 2 * 4 * 512;
  const parts = [
    {
      what: `transformer ${formLabel(ck.transformerWeights(), computeType)}`,
      bytes: weightBytes(ck.transformerWeights(), bytes),
    },
    {
      what: `T5 ${formLabel(ck.component('text_encoder_2').weights, computeType)}`,
      bytes: weightBytes(ck.component('text_encoder_2').weights, t5Bytes),
    },
    { what: 'CLIP', bytes: weightBytes(ck.component('text_encoder').weights, 4) },
    { what: 'VAE', bytes: weightBytes(ck.component('vae').weights, 4) },
    { what: 'activations of a 1024² RAG step (estimate)', bytes: tokens * cfg.inner * 24 * bytes },
    // Engine.decode tiles a 1024² decode (graphs/vae-tiled.ts): one 512² tile's activations, not 1024²'s ≈ 2 GB.
    { what: 'activations of a tiled 1024² VAE decode (estimate)', bytes: decodeActivationBytes(64, 64) },
  ];
  return { parts, total: parts.reduce((n, p) => n + p.bytes, 0) };
}

/** Bytes this process may still allocate: the GPU's free memory, or the host's available memory. Undefined = unknown. */
export function freeMemory(ep: ExecutionProvider, deviceId = 0): { bytes: number; where: string } | undefined {
  if (ep === 'cuda') {
    try {
      const out = execFileSync(
        'nvidia-smi',
        ['--query-gpu=memory.free', '--format=csv,noheader,nounits', '-i', String(deviceId)],
        { encoding: 'utf8', timeout: 10_000 },
      );
      const mib = Number.parseFloat(out.trim().split('\n')[0]!);
      return Number.isFinite(mib) ? { bytes: mib * 2 ** 20, where: `GPU ${deviceId}` } : undefined;
    } catch {
      return undefined;
    }
  }
  if (ep !== 'cpu') return undefined;
  let bytes: number | undefined;
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) bytes = Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  const limit = process.constrainedMemory?.();
  if (limit && limit > 0 && limit < Number.MAX_SAFE_INTEGER) {
    const left = limit - process.memoryUsage().rss;
    bytes = bytes === undefined ? left : Math.min(bytes, left);
  }
  return bytes === undefined ? undefined : { bytes, where: 'this machine' };
}

/** Throws a UserError naming the need, the free bytes and the options when the model does not fit. */
export function checkFits(
  modelId: string,
  need: MemoryNeed,
  free: { bytes: number; where: string } | undefined,
  ep: ExecutionProvider,
): void {
  if (!free || need.total <= free.bytes) return;
  const detail = need.parts.map((p) => `${p.what} ${gib(p.bytes)}`).join(', ');
  const options = [
    'smaller weights: WEIGHTS=int8, or WEIGHTS=transformer:int4,t5:int8, or a GGUF Q4 transformer file (README "Memory" lists what each form needs)',
    'a device with more memory',
    ep === 'cpu'
      ? 'more memory or swap for this machine'
      : 'closing other programs that use the GPU (nvidia-smi lists them)',
    ...(ep === 'cpu' ? [] : ['EXECUTION_PROVIDER=cpu (slow, but it needs only host memory)']),
    'or MEMORY_CHECK=off to try anyway',
  ];
  throw new UserError(
    `${modelId} needs about ${gib(need.total)} (${detail}) but ${free.where} has ${gib(free.bytes)} free. Options: ${options.join('; ')}.`,
  );
}
