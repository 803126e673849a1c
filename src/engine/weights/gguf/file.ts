import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import type { DType, TensorSource } from '../../onnx/graph.ts';
import { WeightsError } from '../safetensors.ts';
import { TensorTable, type TensorFile } from '../tensor-file.ts';
import {
  decodeRows,
  GGML_TYPES,
  ggmlTypeById,
  ggmlTypeName,
  isQuantized,
  type GgmlType,
  type RowFormat,
} from './blocks.ts';
import {
  DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  MAX_DIMS,
  ORIG_SHAPE_PREFIX,
  SCALAR_BYTES,
  VALUE_TYPES,
  type GgufValue,
  type ValueTypeName,
} from './types.ts';

/**
 * A GGUF file (ggml's format: llama.cpp, ComfyUI-GGUF, stable-diffusion.cpp), versions 2 and 3, little-endian:
 *
 *   "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv_count × (string key, u32 type, value),
 *   tensor_count × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset), padding, data.
 *
 * Strings are u64 length + UTF-8 bytes; arrays u32 element type + u64 count + elements. The data section starts
 * at the next multiple of general.alignment (u32, default 32) and offsets are relative to it. ne is innermost
 * first; shapes here are in PyTorch order (ne reversed), or ComfyUI-GGUF's comfy.gguf.orig_shape.<name> where
 * it stored a tensor reshaped. Only the header is read; tensors stay on disk until a graph or readBytes needs them.
 */

export interface GgufTensorInfo {
  name: string;
  /** The logical dtype: the stored one for plain types, float32 for block-quantized ones. */
  dtype: DType;
  /** PyTorch order. */
  shape: number[];
  /** The block format's name for quantized tensors ("Q4_K"); undefined for plain types. */
  format?: string;
  /** ggml's type (id, name, block size) as stored. */
  ggml: GgmlType;
  /** ne as stored (innermost first). */
  ne: number[];
  /** Absolute byte offset and length in the file. */
  offset: number;
  length: number;
}

const PLAIN: Record<string, DType> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I8: 'int8',
  I32: 'int32',
  I64: 'int64',
  F64: 'float64',
};
/** Damaged headers must not make us allocate gigabytes: no real key, name or string value comes near this. */
const MAX_STRING = 64 * 1024 * 1024;
const CHUNK = 1 << 20;

/** Reads the header sequentially in chunks, failing with the file's size when it runs out. */
class HeaderReader {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly label: string,
  ) {}

  private need(n: number, what: string): void {
    if (this.pos + n > this.size) {
      throw new WeightsError(
        `${this.label}: the GGUF header runs past the end of the ${this.size}-byte file (at byte ${this.pos}, reading ${what}); the file is truncated or damaged: download it again`,
      );
    }
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.buf.length) return;
    const len = Math.min(Math.max(n, CHUNK), this.size - this.pos);
    const b = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const r = readSync(this.fd, b, got, len - got, this.pos + got);
      if (r === 0) break;
      got += r;
    }
    if (got < n)
      throw new WeightsError(
        `${this.label}: could not read ${n} bytes at ${this.pos} (the file shrank while reading?)`,
      );
    this.buf = b;
    this.bufStart = this.pos;
  }

  private at(n: number, what: string): number {
    this.need(n, what);
    const i = this.pos - this.bufStart;
    this.pos += n;
    return i;
  }

  /** Reads at the current position: the chunk is (re)loaded by at() before the buffer is read. */
  private read<T>(n: number, what: string, get: (b: Buffer, i: number) => T): T {
    const i = this.at(n, what);
    return get(this.buf, i);
  }

  u32(what: string): number {
    return this.read(4, what, (b, i) => b.readUInt32LE(i));
  }

  u64(what: string): bigint {
    return this.read(8, what, (b, i) => b.readBigUInt64LE(i));
  }

  /** A u64 that must be a safe JS integer no larger than `max` (counts, lengths, dims, offsets). */
  count(what: string, max: number): number {
    const v = this.u64(what);
    if (v > BigInt(max)) {
      throw new WeightsError(
        `${this.label}: ${what} is ${v}, more than the rest of this ${this.size}-byte file can hold (at most ${Math.max(0, max)} at byte ${this.pos - 8}); the file is truncated or its header damaged: download it again`,
      );
    }
    return Number(v);
  }

  bytes(n: number, what: string): Buffer {
    const i = this.at(n, what);
    return this.buf.subarray(i, i + n);
  }

  string(what: string): string {
    const n = this.count(`the length of ${what}`, Math.min(MAX_STRING, this.size - this.pos - 8));
    return this.bytes(n, what).toString('utf8');
  }

  remaining(): number {
    return this.size - this.pos;
  }

  scalar(type: ValueTypeName, what: string): GgufValue {
    switch (type) {
      case 'u8':
        return this.read(1, what, (b, i) => b.readUInt8(i));
      case 'i8':
        return this.read(1, what, (b, i) => b.readInt8(i));
      case 'u16':
        return this.read(2, what, (b, i) => b.readUInt16LE(i));
      case 'i16':
        return this.read(2, what, (b, i) => b.readInt16LE(i));
      case 'u32':
        return this.read(4, what, (b, i) => b.readUInt32LE(i));
      case 'i32':
        return this.read(4, what, (b, i) => b.readInt32LE(i));
      case 'f32':
        return this.read(4, what, (b, i) => b.readFloatLE(i));
      case 'bool': {
        const v = this.read(1, what, (b, i) => b.readUInt8(i));
        if (v > 1)
          throw new WeightsError(
            `${this.label}: ${what} is a bool of value ${v} (must be 0 or 1); the header is damaged: download it again or convert the model again`,
          );
        return v === 1;
      }
      case 'string':
        return this.string(what);
      case 'u64':
        return this.read(8, what, (b, i) => b.readBigUInt64LE(i));
      case 'i64':
        return this.read(8, what, (b, i) => b.readBigInt64LE(i));
      case 'f64':
        return this.read(8, what, (b, i) => b.readDoubleLE(i));
      case 'array':
        throw new Error('internal error: arrays are read by value()');
    }
  }
}

/** One GGUF file: header parsed, tensors by name. */
export class GgufFile extends TensorTable<GgufTensorInfo> implements TensorFile {
  readonly realPath: string;
  readonly version: number;
  readonly metadata: Record<string, GgufValue> = {};
  /** Each metadata key's GGUF type ("u32", "string", "array" ...) and, for arrays, the element type. */
  readonly metadataTypes: Record<string, { type: ValueTypeName; elem?: ValueTypeName }> = {};
  readonly alignment: number;
  /** Absolute offset of the data section. */
  readonly dataStart: number;
  readonly size: number;

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
      this.size = fstatSync(fd).size;
      const r = new HeaderReader(fd, this.size, label);
      if (this.size < 4 || r.bytes(4, 'the magic').toString('latin1') !== GGUF_MAGIC) {
        r.pos = 0;
        const head = this.size >= 4 ? JSON.stringify(r.bytes(4, 'the magic').toString('latin1')) : `${this.size} bytes`;
        throw new WeightsError(
          `${label}: not a GGUF file (it starts with ${head}, not "GGUF"); check that it is a .gguf model (safetensors files need a .safetensors name) and download it again if it is`,
        );
      }
      this.version = r.u32('the version');
      if (this.version !== 2 && this.version !== 3) {
        const hint =
          this.version === 1
            ? ' (GGUF v1 from 2023 is not supported: convert the model again with a current llama.cpp or ComfyUI-GGUF)'
            : this.version === 0x03000000 || this.version === 0x02000000
              ? ' (this is a big-endian GGUF file; use a little-endian one)'
              : '';
        throw new WeightsError(
          `${label}: GGUF version ${this.version} is not supported (scenewright reads versions 2 and 3)${hint}`,
        );
      }
      // Each tensor info takes at least 24 bytes and each kv pair at least 13: counts beyond that are damage.
      const tensorCount = r.count('the tensor count', Math.floor(r.remaining() / 24));
      const kvCount = r.count('the metadata count', Math.floor(r.remaining() / 13));
      for (let i = 0; i < kvCount; i++) this.readKv(r);
      this.alignment = this.readAlignment();
      const infos: { name: string; ne: number[]; typeId: number; rel: number }[] = [];
      for (let i = 0; i < tensorCount; i++) {
        const name = r.string(`the name of tensor ${i}`);
        const nDims = r.u32(`the dimension count of tensor ${name}`);
        if (nDims > MAX_DIMS)
          throw new WeightsError(
            `${label}: tensor ${name} has ${nDims} dimensions; GGUF (ggml) allows at most ${MAX_DIMS}; the header is damaged: download it again or convert the model again`,
          );
        const ne: number[] = [];
        for (let d = 0; d < nDims; d++) ne.push(r.count(`dimension ${d} of tensor ${name}`, Number.MAX_SAFE_INTEGER));
        const typeId = r.u32(`the type of tensor ${name}`);
        const rel = r.count(`the data offset of tensor ${name}`, Number.MAX_SAFE_INTEGER);
        infos.push({ name, ne, typeId, rel });
      }
      this.dataStart = tensorCount > 0 ? Math.ceil(r.pos / this.alignment) * this.alignment : r.pos;
      for (const info of infos) this.addTensor(info);
      this.checkOverlaps();
    } finally {
      closeSync(fd);
    }
  }

  private readKv(r: HeaderReader): void {
    const key = r.string('a metadata key');
    if (key in this.metadata)
      throw new WeightsError(
        `${this.label}: metadata key ${key} appears twice; the file is damaged: download it again or convert the model again`,
      );
    const type = this.valueType(r, key);
    if (type === 'array') {
      const elem = this.valueType(r, `${key}[]`);
      this.metadataTypes[key] = { type, elem };
      this.metadata[key] = this.readArrayBody(r, key, elem);
    } else {
      this.metadataTypes[key] = { type };
      this.metadata[key] = r.scalar(type, `metadata ${key}`);
    }
  }

  private valueType(r: HeaderReader, key: string): ValueTypeName {
    const id = r.u32(`the type of metadata ${key}`);
    const type = VALUE_TYPES[id];
    if (!type)
      throw new WeightsError(
        `${this.label}: metadata ${key} has value type ${id}, which GGUF does not define (0..12); the file is damaged or from a newer GGUF version: download it again, or convert the model again with llama.cpp or ComfyUI-GGUF`,
      );
    return type;
  }

  private readArrayBody(r: HeaderReader, key: string, elem: ValueTypeName): GgufValue[] {
    const minBytes = SCALAR_BYTES[elem] ?? (elem === 'string' ? 8 : 12);
    const n = r.count(`the length of metadata array ${key}`, Math.floor(r.remaining() / minBytes));
    const out: GgufValue[] = new Array(n);
    for (let i = 0; i < n; i++) {
      out[i] =
        elem === 'array'
          ? this.readArrayBody(r, `${key}[${i}]`, this.valueType(r, `${key}[${i}]`))
          : r.scalar(elem, `metadata ${key}[${i}]`);
    }
    return out;
  }

  private readAlignment(): number {
    const v = this.metadata['general.alignment'];
    if (v === undefined) return DEFAULT_ALIGNMENT;
    if (
      this.metadataTypes['general.alignment']!.type !== 'u32' ||
      typeof v !== 'number' ||
      v === 0 ||
      (v & (v - 1)) !== 0
    ) {
      throw new WeightsError(
        `${this.label}: general.alignment is ${String(v)} (${this.metadataTypes['general.alignment']!.type}); GGUF requires a u32 power of two; the file is damaged: download it again or convert the model again`,
      );
    }
    return v;
  }

  private addTensor({ name, ne, typeId, rel }: { name: string; ne: number[]; typeId: number; rel: number }): void {
    const where = `${this.label}: tensor ${name}`;
    if (this.tensors.has(name))
      throw new WeightsError(
        `${where} appears twice in the header; the file is damaged: download it again or convert the model again`,
      );
    const ggml = ggmlTypeById(typeId);
    if (!ggml) {
      const known = ggmlTypeName(typeId);
      const supported = GGML_TYPES.map((t) => t.name).join(', ');
      throw new WeightsError(
        `${where} has ggml type ${typeId}${known ? ` (${known})` : ' (unknown to scenewright; from a newer ggml?)'}, which scenewright cannot read (supported: ${supported}); re-quantize the model to Q8_0, Q4_0 or Q4_K (llama.cpp's llama-quantize or ComfyUI-GGUF's tools), or use the bf16/fp8 safetensors file`,
      );
    }
    const count = ne.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count))
      throw new WeightsError(
        `${where} has an absurd shape [${ne.join(', ')}]; the header is damaged: download it again or convert the model again`,
      );
    if ((ne[0] ?? 1) % ggml.blockElems !== 0) {
      throw new WeightsError(
        `${where}: its rows of ${ne[0]} values are not whole ${ggml.name} blocks of ${ggml.blockElems}; the file is damaged (ggml cannot write such a tensor): download it again or convert the model again`,
      );
    }
    const length = (count / ggml.blockElems) * ggml.bytesPerBlock;
    if (rel % this.alignment !== 0) {
      throw new WeightsError(
        `${where}: its data offset ${rel} is not a multiple of the file's alignment ${this.alignment}; the header is damaged: download the file again`,
      );
    }
    const offset = this.dataStart + rel;
    if (offset + length > this.size) {
      throw new WeightsError(
        `${where} (${ggml.name}, ${length} bytes) ends at byte ${offset + length} but the file has only ${this.size} bytes; the download is truncated: download it again`,
      );
    }
    const shape = this.origShape(name, count) ?? [...ne].reverse();
    const format = isQuantized(ggml.name) ? ggml.name : undefined;
    const dtype = format ? 'float32' : PLAIN[ggml.name]!;
    this.tensors.set(name, { name, dtype, shape, format, ggml, ne, offset, length });
  }

  /** ComfyUI-GGUF's orig_shape for a reshaped tensor (an integer array with the same element count), if any. */
  private origShape(name: string, count: number): number[] | undefined {
    const key = ORIG_SHAPE_PREFIX + name;
    const v = this.metadata[key];
    if (v === undefined) return undefined;
    const t = this.metadataTypes[key]!;
    const ints = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', 'i64'];
    if (t.type !== 'array' || !ints.includes(t.elem!) || !Array.isArray(v)) {
      throw new WeightsError(
        `${this.label}: metadata ${key} must be an array of integers (ComfyUI-GGUF writes int32), not ${t.type}${t.elem ? ` of ${t.elem}` : ''}; convert the model again with ComfyUI-GGUF's tools`,
      );
    }
    const shape = v.map(Number);
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || shape.reduce((a, b) => a * b, 1) !== count) {
      throw new WeightsError(
        `${this.label}: tensor ${name} holds ${count} values but its ${key} is [${shape.join(', ')}]; the file is damaged: download it again or convert the model again`,
      );
    }
    return shape;
  }

  private checkOverlaps(): void {
    const sorted = [...this.tensors.values()].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      const [p, t] = [sorted[i - 1]!, sorted[i]!];
      if (t.offset < p.offset + p.length) {
        throw new WeightsError(
          `${this.label}: tensors ${p.name} (bytes ${p.offset}..${p.offset + p.length}) and ${t.name} (from byte ${t.offset}) overlap; the header is damaged: download the file again`,
        );
      }
    }
  }

  /**
   * Plain tensors: external data in place. Quantized ones: `encoded` rows, row r = bytes [r·rowBytes, (r+1)·rowBytes)
   * for the shape[0] rows (a 1-D tensor is one row), so rows can be sliced by byte range.
   */
  source(name: string): TensorSource {
    const t = this.info(name);
    const external = { file: this.realPath, offset: t.offset, length: t.length };
    if (!t.format) return { dtype: t.dtype, shape: t.shape, external };
    const rows = t.shape.length > 1 ? t.shape[0]! : 1;
    const perRow = rows === 0 ? 0 : t.shape.reduce((a, b) => a * b, 1) / rows;
    if (perRow % t.ggml.blockElems !== 0) {
      throw new WeightsError(
        `${this.label}: tensor ${name} is ${t.format} stored reshaped (comfy.gguf.orig_shape [${t.shape.join(', ')}]): its rows of ${perRow} values are not whole ${t.ggml.blockElems}-value blocks, so they cannot be read as quantized rows; convert this tensor to F16/F32 or a 32-block format (Q8_0/Q4_0) when making the GGUF file`,
      );
    }
    return {
      dtype: 'float32',
      shape: t.shape,
      encoded: { format: t.format, rowBytes: rows === 0 ? 0 : t.length / rows, external },
    };
  }

  /** The tensor's stored bytes. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    return readRange(this.realPath, t.offset, t.length, `${this.label}: tensor ${name}`);
  }

  /** Float tensors and quantized ones decoded with ggml's rules, as float32 (tests, small tables). */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    const g = t.ggml.name;
    if (g !== 'F32' && g !== 'F16' && g !== 'BF16' && !t.format)
      throw new WeightsError(
        `${this.label}: tensor ${name} is ${g}; readFloat32 reads F32, F16, BF16 and block-quantized tensors`,
      );
    const count = t.shape.reduce((a, b) => a * b, 1);
    return decodeRows(g as RowFormat, this.readBytes(name), 1, count);
  }
}

function readRange(file: string, offset: number, length: number, what: string): Uint8Array {
  const fd = openSync(file, 'r');
  try {
    const b = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, b, got, length - got, offset + got);
      if (n === 0) throw new WeightsError(`${what} could not be read past byte ${offset + got} (the file shrank?)`);
      got += n;
    }
    return b;
  } finally {
    closeSync(fd);
  }
}
