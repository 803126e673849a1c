import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { DType } from '../../onnx/graph.ts';
import { bf16ToFloat32Array, f16BitsToF32, f8e4m3fnToFloat32Array } from '../../weights/dtype.ts';
import { LoraFileError } from './errors.ts';

/**
 * One pass over a LoRA file: every byte goes through SHA-256 and the wanted tensors' bytes are caught on the way,
 * each converted to float32 as soon as it is complete, so a 700 MB file is read once and its raw bytes are never
 * all held at once.
 */

/** A tensor to catch: absolute byte range in the file. */
export interface WantedTensor {
  key: string;
  dtype: DType;
  start: number;
  end: number;
}

/** Float dtypes a LoRA factor may have. */
export const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['float32', 'float16', 'bfloat16', 'float64', 'float8e4m3fn']);

const CHUNK = 8 * 2 ** 20;

let f16Table: Float32Array | undefined;
function f16ToFloat32Fast(bits: Uint16Array): Float32Array {
  f16Table ??= Float32Array.from({ length: 65536 }, (_, h) => f16BitsToF32(h));
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16Table[bits[i]!]!;
  return out;
}

function toFloat32(dtype: DType, raw: Uint8Array): Float32Array {
  const buf = raw.buffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, raw.byteOffset, raw.byteLength / 4);
    case 'bfloat16':
      return bf16ToFloat32Array(new Uint16Array(buf, raw.byteOffset, raw.byteLength / 2));
    case 'float16':
      return f16ToFloat32Fast(new Uint16Array(buf, raw.byteOffset, raw.byteLength / 2));
    case 'float64':
      return Float32Array.from(new Float64Array(buf, raw.byteOffset, raw.byteLength / 8));
    case 'float8e4m3fn':
      return f8e4m3fnToFloat32Array(raw);
    default:
      throw new Error(`internal error: ${dtype} is not a LoRA factor type`);
  }
}

/** Hashes the whole file and returns the wanted tensors as float32, by key. */
export async function hashAndRead(
  path: string,
  wanted: readonly WantedTensor[],
  chunkBytes = CHUNK,
): Promise<{ sha256: string; tensors: Map<string, Float32Array> }> {
  const hash = createHash('sha256');
  const tensors = new Map<string, Float32Array>();
  const order = [...wanted].sort((a, b) => a.start - b.start);
  const active: { t: WantedTensor; raw: Uint8Array }[] = [];
  let next = 0;
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const chunk = Buffer.allocUnsafe(chunkBytes);
    for (let pos = 0; pos < size;) {
      const { bytesRead } = await fh.read(chunk, 0, Math.min(chunkBytes, size - pos), pos);
      if (bytesRead === 0)
        throw new LoraFileError(`${path} ended at byte ${pos} while being read (it was ${size} bytes); copy it again`);
      const end = pos + bytesRead;
      hash.update(chunk.subarray(0, bytesRead));
      while (next < order.length && order[next]!.start < end) {
        const t = order[next++]!;
        // A fresh ArrayBuffer per tensor keeps the float views aligned whatever the tensor's file offset.
        active.push({ t, raw: new Uint8Array(t.end - t.start) });
      }
      for (let i = 0; i < active.length;) {
        const { t, raw } = active[i]!;
        const from = Math.max(t.start, pos);
        const to = Math.min(t.end, end);
        if (to > from) raw.set(chunk.subarray(from - pos, to - pos), from - t.start);
        if (t.end <= end) {
          tensors.set(t.key, toFloat32(t.dtype, raw));
          active.splice(i, 1);
        } else i++;
      }
      pos = end;
    }
  } finally {
    await fh.close();
  }
  const missing = wanted.find((t) => !tensors.has(t.key));
  if (missing)
    throw new LoraFileError(`${path}: tensor ${missing.key} lies past the end of the file (truncated?); copy it again`);
  return { sha256: hash.digest('hex'), tensors };
}
