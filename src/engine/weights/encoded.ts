/**
 * Block-quantized tensors (`TensorSource.encoded`, GGUF's formats) read on the host: decoded to float32 or repacked
 * into MatMulNBits form. The formats themselves live in ./gguf/.
 */
import type { TensorSource } from '../onnx/graph.ts';
import { decodeRows, isQuantized, type RowFormat } from './gguf/blocks.ts';
import { nbitsFormOf, toNBits } from './gguf/to-nbits.ts';
import type { NBitsHost } from './nbits.ts';
import { readSourceBytes } from './source-bytes.ts';

/** The MatMulNBits form a block format repacks into exactly. */
export function naturalForm(format: string): { bits: 4 | 8; block: number; affine: boolean } {
  const f = nbitsFormOf(format);
  if (!f) throw new Error(`internal error: ${format} has no MatMulNBits form`);
  return f;
}

/** Rows as the GGUF reader cuts them: shape[0] rows of the rest; a 1-D tensor is one row. */
function rowsCols(src: TensorSource): [number, number] {
  if (src.shape.length < 2) return [1, src.shape[0] ?? 1];
  const [rows, ...rest] = src.shape;
  return [rows!, rest.reduce((a, b) => a * b, 1)];
}

function encodedBytes(src: TensorSource): Uint8Array {
  if (!src.encoded) throw new Error('internal error: not an encoded tensor');
  return readSourceBytes({ dtype: 'uint8', shape: [src.encoded.external.length], external: src.encoded.external });
}

export function decodeEncoded(src: TensorSource): Float32Array {
  const [rows, cols] = rowsCols(src);
  return decodeRows(src.encoded!.format as RowFormat, encodedBytes(src), rows, cols);
}

export function toNBitsFromSource(src: TensorSource): NBitsHost {
  const [rows, cols] = rowsCols(src);
  const format = src.encoded!.format;
  if (!isQuantized(format)) throw new Error(`internal error: ${format} is not a block format`);
  return toNBits(format, encodedBytes(src), rows, cols);
}
