import { DTYPE_BYTES, type NBitsParts, type TensorSource } from '../onnx/graph.ts';
import { concatFloat32 } from '../float32.ts';
import { decodeEncoded } from './encoded.ts';
import { dequantizeNBits, type NBitsHost } from './nbits.ts';
import { toFloat32 } from './safetensors.ts';
import { readSourceBytes } from './source-bytes.ts';

/**
 * Rows [start, start+count) of a tensor along axis 0. Rows of a row-major tensor are contiguous, so for
 * external data this is only a narrower byte range of the same file: fused checkpoints (BFL's qkv) are split
 * without copying anything.
 */
export function sliceRows(src: TensorSource, start: number, count: number): TensorSource {
  const [rows, ...rest] = src.shape;
  if (rows === undefined || start < 0 || start + count > rows)
    throw new Error(`internal error: rows ${start}+${count} outside [0,${rows})`);
  const shape = [count, ...rest];
  const range = (rowBytes: number, at: { file: string; offset: number }) => ({
    file: at.file,
    offset: at.offset + start * rowBytes,
    length: count * rowBytes,
  });
  // Block-quantized rows are contiguous too (a row is whole blocks), and so is each part of a MatMulNBits weight.
  if (src.encoded)
    return {
      dtype: src.dtype,
      shape,
      encoded: { ...src.encoded, external: range(src.encoded.rowBytes, src.encoded.external) },
    };
  if (src.nbits) {
    const q = src.nbits;
    const part = (p: TensorSource) => sliceRows(p, start, count);
    const nbits: NBitsParts = {
      ...q,
      packed: part(q.packed),
      scales: part(q.scales),
      ...(q.zeros ? { zeros: part(q.zeros) } : {}),
      ...(q.mins ? { mins: part(q.mins) } : {}),
    };
    return { dtype: src.dtype, shape, nbits };
  }
  const rowBytes = rest.reduce((a, b) => a * b, 1) * DTYPE_BYTES[src.dtype];
  const scale = src.scale !== undefined ? { scale: src.scale } : {};
  if (src.external) return { dtype: src.dtype, shape, ...scale, external: range(rowBytes, src.external) };
  if (src.data)
    return { dtype: src.dtype, shape, ...scale, data: src.data.subarray(start * rowBytes, (start + count) * rowBytes) };
  throw new Error('internal error: sliceRows needs external or in-memory data');
}

/** Parts joined along axis 0. */
export function concatRows(parts: TensorSource[]): TensorSource {
  const first = parts[0]!;
  const rows = parts.reduce((a, p) => a + p.shape[0]!, 0);
  return { dtype: first.dtype, shape: [rows, ...first.shape.slice(1)], concat: parts };
}

/** Reads a tensor source into float32 values (tests, debugging, small tables computed in TS). */
export function sourceToFloat32(src: TensorSource): Float32Array {
  if (src.concat) return concatFloat32(src.concat.map(sourceToFloat32));
  if (src.encoded) return decodeEncoded(src);
  if (src.nbits) return dequantizeNBits(nbitsHost(src));
  const buf = readSourceBytes(src).slice().buffer;
  const data =
    src.dtype === 'float16' || src.dtype === 'bfloat16'
      ? new Uint16Array(buf)
      : src.dtype === 'float32'
        ? new Float32Array(buf)
        : src.dtype === 'float64'
          ? new Float64Array(buf)
          : src.dtype === 'int64'
            ? new BigInt64Array(buf)
            : src.dtype === 'int32'
              ? new Int32Array(buf)
              : new Uint8Array(buf);
  const values = toFloat32({ dtype: src.dtype, shape: src.shape, data });
  if (src.scale !== undefined && src.scale !== 1) for (let i = 0; i < values.length; i++) values[i]! *= src.scale;
  return values;
}

/** A MatMulNBits source's parts read into host memory. */
export function nbitsHost(src: TensorSource): NBitsHost {
  const q = src.nbits!;
  const f32 = (p: TensorSource) => new Float32Array(readSourceBytes(p).slice().buffer);
  const [rows, cols] = src.shape as [number, number];
  return {
    bits: q.bits,
    block: q.block,
    rows,
    cols,
    packed: readSourceBytes(q.packed).slice(),
    scales: f32(q.scales),
    ...(q.zeros ? { zeros: readSourceBytes(q.zeros).slice() } : {}),
    ...(q.mins ? { mins: f32(q.mins) } : {}),
  };
}
