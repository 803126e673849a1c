import { closeSync, fstatSync, openSync, readSync, realpathSync, writeSync } from 'node:fs';
import { DTYPE_BYTES, type DType, type TensorSource } from '../onnx/graph.ts';
import { WeightsError } from './errors.ts';
import { TensorTable, type TensorFile } from './tensor-file.ts';
import { bf16ToFloat32Array, f16ToFloat32Array, f8e4m3fnToFloat32Array } from './dtype.ts';

/**
 * The safetensors format: u64 little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then raw little-endian
 * bytes. Offsets are relative to the end of the header; readers must use them (writers may order data freely).
 * A tensor's absolute offset, as ONNX external data needs it, is 8 + headerLength + begin.
 */

export { WeightsError } from './errors.ts';

/** safetensors dtype names ↔ ours. */
const FROM_ST: Record<string, DType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
  F8_E4M3: 'float8e4m3fn',
};
const TO_ST: Record<DType, string> = Object.fromEntries(Object.entries(FROM_ST).map(([k, v]) => [v, k])) as Record<
  DType,
  string
>;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Byte range relative to the data section. */
  begin: number;
  end: number;
}

/** A tensor in host memory: float32 and int64 for graph I/O; 16-bit types as raw bits. */
export type HostData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: HostData;
}

const MAX_HEADER = 100 * 1024 * 1024; // what the reference implementation accepts

function readExactly(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** One .safetensors file: its header parsed, tensors readable by name. */
export class SafetensorsFile extends TensorTable<TensorInfo> implements TensorFile {
  /** Absolute path with symlinks resolved (what ONNX external data must point at). */
  readonly realPath: string;
  readonly headerLength: number;
  readonly dataStart: number;
  readonly metadata: Record<string, string>;

  /** `label` is how errors name the file (e.g. "transformer/diffusion_pytorch_model.safetensors"). */
  constructor(
    readonly path: string,
    readonly label: string = path,
  ) {
    super();
    let fd: number;
    try {
      this.realPath = realpathSync(path);
      fd = openSync(this.realPath, 'r');
    } catch (e) {
      throw new WeightsError(
        `${label}: cannot open weights file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    try {
      const size = fstatSync(fd).size;
      const head = readExactly(fd, 8, 0);
      if (head.length < 8)
        throw new WeightsError(
          `${label}: truncated safetensors file (${size} bytes, the header length alone needs 8); download it again`,
        );
      const n = head.readBigUInt64LE(0);
      if (n > BigInt(size - 8)) {
        throw new WeightsError(
          `${label}: safetensors header length ${n} runs past the end of the ${size}-byte file (truncated or not a safetensors file); download it again`,
        );
      }
      if (n > BigInt(MAX_HEADER))
        throw new WeightsError(`${label}: safetensors header of ${n} bytes is larger than 100 MB; not a valid file`);
      this.headerLength = Number(n);
      this.dataStart = 8 + this.headerLength;
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(readExactly(fd, this.headerLength, 8).toString('utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new WeightsError(
          `${label}: safetensors header is not valid JSON (${(e as Error).message}); the file is damaged or not safetensors`,
        );
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header))
        throw new WeightsError(`${label}: safetensors header is not a JSON object`);
      const dataSize = size - this.dataStart;
      this.metadata = {};
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') {
          Object.assign(this.metadata, raw);
          continue;
        }
        this.tensors.set(name, this.parseEntry(name, raw, dataSize));
      }
    } finally {
      closeSync(fd);
    }
  }

  private parseEntry(name: string, raw: unknown, dataSize: number): TensorInfo {
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const where = `${this.label}: tensor ${name}`;
    if (typeof e !== 'object' || e === null) throw new WeightsError(`${where} has no header entry object`);
    const dtype = FROM_ST[String(e.dtype)];
    if (!dtype) {
      throw new WeightsError(
        `${where} has dtype ${String(e.dtype)}, which scenewright cannot read (supported: ${Object.keys(FROM_ST).join(', ')}); use a BF16, F16, F32 or F8_E4M3 checkpoint${String(e.dtype).startsWith('F8') ? ' (fp8 files must be e4m3fn, as flux1-dev-fp8.safetensors is; e5m2 is not supported)' : ''}`,
      );
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new WeightsError(`${where} has an invalid shape ${JSON.stringify(shape)}`);
    const off = e.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isInteger(d) && d >= 0) ||
      off[1] < off[0]
    ) {
      throw new WeightsError(`${where} has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    const want = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (end - begin !== want)
      throw new WeightsError(
        `${where}: data_offsets span ${end - begin} bytes but shape [${shape.join(',')}] of ${e.dtype} needs ${want}`,
      );
    if (end > dataSize)
      throw new WeightsError(
        `${where} ends at byte ${this.dataStart + end} but the file has only ${this.dataStart + dataSize} bytes (truncated download?)`,
      );
    return { name, dtype, shape: shape as number[], begin, end };
  }

  /** Where the tensor's bytes are, for an ONNX initializer that reads them in place. */
  source(name: string): TensorSource {
    const t = this.info(name);
    return {
      dtype: t.dtype,
      shape: t.shape,
      external: { file: this.realPath, offset: this.dataStart + t.begin, length: t.end - t.begin },
    };
  }

  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const fd = openSync(this.realPath, 'r');
    try {
      return new Uint8Array(readExactly(fd, t.end - t.begin, this.dataStart + t.begin));
    } finally {
      closeSync(fd);
    }
  }

  /** The tensor in its own dtype (16-bit floats as raw bits in a Uint16Array). */
  read(name: string): HostTensor {
    const t = this.info(name);
    return { dtype: t.dtype, shape: t.shape, data: typedView(t.dtype, this.readBytes(name)) };
  }

  /** The tensor converted to float32 (for tests, debugging and small tables). */
  readFloat32(name: string): Float32Array {
    return toFloat32(this.read(name));
  }
}

function typedView(dtype: DType, bytes: Uint8Array): HostData {
  // Copy into a fresh, aligned buffer: the bytes may sit at any offset.
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf);
    case 'float64':
      return new Float64Array(buf);
    case 'int64':
      return new BigInt64Array(buf);
    case 'int32':
      return new Int32Array(buf);
    case 'int8':
      return new Int8Array(buf);
    case 'uint8':
    case 'bool':
    case 'float8e4m3fn':
      return new Uint8Array(buf);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(buf);
  }
}

/** Converts any host tensor to float32 values. */
export function toFloat32(t: HostTensor): Float32Array {
  const d = t.data;
  if (t.dtype === 'bfloat16') return bf16ToFloat32Array(d as Uint16Array);
  if (t.dtype === 'float16') return f16ToFloat32Array(d as Uint16Array);
  if (t.dtype === 'float8e4m3fn') return f8e4m3fnToFloat32Array(d as Uint8Array);
  if (d instanceof Float32Array) return d;
  if (d instanceof BigInt64Array) return Float32Array.from(d, (x) => Number(x));
  return Float32Array.from(d as ArrayLike<number>);
}

/** Reads every tensor of a (small) file into memory, in header order. */
export function readSafetensors(path: string): {
  tensors: Record<string, HostTensor>;
  metadata: Record<string, string>;
} {
  const f = new SafetensorsFile(path);
  const tensors: Record<string, HostTensor> = {};
  for (const n of f.names()) tensors[n] = f.read(n);
  return { tensors, metadata: f.metadata };
}

/** The header (with its u64 length prefix, padded to 8 bytes as the reference writer does) and each tensor's bytes. */
function layoutSafetensors(
  tensors: Record<string, HostTensor>,
  metadata?: Record<string, string>,
): { head: Buffer; chunks: Uint8Array[] } {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (bytes.byteLength !== count * DTYPE_BYTES[t.dtype]) {
      throw new Error(
        `tensor ${name}: ${bytes.byteLength} bytes of data for shape [${t.shape.join(',')}] of ${t.dtype}`,
      );
    }
    header[name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return { head: Buffer.concat([len, Buffer.from(json, 'utf8')]), chunks };
}

/** Serialises tensors (in the given key order). */
export function encodeSafetensors(tensors: Record<string, HostTensor>, metadata?: Record<string, string>): Buffer {
  const { head, chunks } = layoutSafetensors(tensors, metadata);
  return Buffer.concat([head, ...chunks]);
}

/** Writes tensors tensor by tensor (a file may be larger than one Buffer can hold). */
export function writeSafetensors(
  path: string,
  tensors: Record<string, HostTensor>,
  metadata?: Record<string, string>,
): void {
  const { head, chunks } = layoutSafetensors(tensors, metadata);
  const fd = openSync(path, 'w');
  try {
    for (const c of [head, ...chunks]) {
      for (let done = 0; done < c.byteLength;) done += writeSync(fd, c, done, Math.min(c.byteLength - done, 2 ** 30));
    }
  } finally {
    closeSync(fd);
  }
}

/** Shorthands for the common host tensors. */
export const host = {
  f32: (data: Float32Array, shape: number[]): HostTensor => ({ dtype: 'float32', shape, data }),
  i64: (data: BigInt64Array, shape: number[]): HostTensor => ({ dtype: 'int64', shape, data }),
};
