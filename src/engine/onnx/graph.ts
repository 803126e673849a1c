import path from 'node:path';
import {
  AttributeType,
  DataLocation,
  encodeModel,
  type AttributeProtoObject,
  type GraphProtoObject,
  type ModelProtoObject,
  type NodeProtoObject,
  type TensorProtoObject,
  type ValueInfoProtoObject,
} from './proto.ts';

/**
 * The ONNX graph being built: inputs, initializers (inline or external), nodes, outputs.
 * See ./index.ts for the API overview; the op helpers live in ./ops.ts and ./nn.ts.
 */

/** ONNX IR version written into every model (IR 10 = ONNX 1.16; ORT 1.30 reads up to 11). */
export const IR_VERSION = 10;
/**
 * Default-domain opset. 23 gives RMSNormalization and Attention and is fully implemented by ORT 1.30's CPU EP
 * (checked by test/engine/onnx-builder.test.ts); older ops keep their earlier versions' semantics.
 */
export const DEFAULT_OPSET = 23;
/** com.microsoft contrib ops (MultiHeadAttention etc.) are all version 1. */
export const MS_DOMAIN = 'com.microsoft';

export type DType =
  'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool' | 'float8e4m3fn';
/** A float type a graph can compute in. */
export type FloatType = 'float32' | 'float16' | 'bfloat16';
/** A dimension: a number, or a symbolic name such as 'N' for a size known only at run time. */
export type Dim = number | string;

/** TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
  float8e4m3fn: 17,
};
export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
  bfloat16: 2,
  float8e4m3fn: 1,
};

/**
 * Bytes of one tensor inside a file on disk, stored as ONNX external data. `file` must be a real path
 * (symlinks resolved): ORT refuses symlinks that lead out of the external data folder.
 */
export interface ExternalData {
  file: string;
  offset: number;
  length: number;
}

/** A weight as the checkpoint layer describes it: dtype, shape and where its bytes are. */
export interface TensorSource {
  dtype: DType;
  shape: number[];
  /** Where the bytes live on disk (the normal case: nothing is copied). */
  external?: ExternalData;
  /** Bytes in memory, little-endian, for derived constants (tests, small tables). */
  data?: Uint8Array;
  /**
   * The tensor is these parts concatenated along axis 0 (e.g. a checkpoint that stores two halves in the other
   * order). Each part becomes its own initializer and a Concat joins them; ORT folds it at load.
   */
  concat?: TensorSource[];
  /** float8e4m3fn only: the stored values times this are the weights (ComfyUI's "scaled fp8" scale_weight). */
  scale?: number;
  /**
   * Block-quantized bytes in a format the graph cannot read (GGUF's Q4_0, Q4_K, ...); `dtype`/`shape` are the
   * logical float tensor. Weights preparation (weights/prepare.ts) repacks these into `nbits` before a graph is built.
   */
  encoded?: EncodedData;
  /** A [N, K] linear weight in com.microsoft.MatMulNBits form (dtype/shape logical); only linear() can use it. */
  nbits?: NBitsParts;
}

/** A tensor of block-quantized rows: row r is bytes [r·rowBytes, (r+1)·rowBytes) of `external`. */
export interface EncodedData {
  /** The format's name, e.g. GGUF's "Q4_K". */
  format: string;
  rowBytes: number;
  external: ExternalData;
}

/**
 * MatMulNBits weights, each part row-major with the N output rows first so that rows can be sliced:
 * w[n, k] = scales[n, b]·(q[n, k] − zero[n, b]) − mins[n, b] with b = ⌊k / block⌋.
 */
export interface NBitsParts {
  bits: 4 | 8;
  block: number;
  /** uint8 [N, K/block, block·bits/8]; 4-bit values low nibble first. */
  packed: TensorSource;
  /** float32 [N, K/block]. */
  scales: TensorSource;
  /** uint8 [N, ⌈(K/block)·bits/8⌉], packed like the values; absent = 2^(bits−1). */
  zeros?: TensorSource;
  /** float32 [N, K/block]: an affine format's per-block offset (GGUF Q4_1, Q4_K, Q5_K); absent = 0. */
  mins?: TensorSource;
}

/** A symbolic tensor in the graph. `dtype` is tracked where the builder knows it (inputs, initializers, casts). */
export class Value {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly dtype?: DType,
  ) {}
}

/** A linear layer's weight as linear() takes it: a dense [out, in] value or MatMulNBits parts. */
export type LinearWeight = Value | QuantLinear;
export interface QuantLinear {
  kind: 'nbits';
  name: string;
  N: number;
  K: number;
  bits: 4 | 8;
  block: number;
  packed: Value;
  scales: Value;
  zeros?: Value;
  /** float32 [K/block, N]. */
  minsT?: Value;
}

/** An attribute value. Integral numbers become INT, others FLOAT; wrap with attr.float / attr.floats to force floats. */
export type AttrValue = number | string | number[] | string[] | FloatAttr | FloatsAttr | GraphAttr;
export interface FloatAttr {
  kind: 'float';
  value: number;
}
export interface FloatsAttr {
  kind: 'floats';
  value: number[];
}
/** A subgraph attribute (If branches, Loop bodies), made by Graph.subgraph. */
export interface GraphAttr {
  kind: 'graph';
  value: GraphProtoObject;
}
export const attr = {
  float: (value: number): FloatAttr => ({ kind: 'float', value }),
  floats: (value: number[]): FloatsAttr => ({ kind: 'floats', value }),
};
export type Attrs = Record<string, AttrValue | undefined>;

export interface OpOptions {
  domain?: string;
  /** Node name; defaults to `<scope>/<OpType>_<n>`. */
  name?: string;
  /** dtype of the outputs if known; defaults to the first input's. */
  dtype?: DType;
}

export interface GraphOptions {
  /** Default-domain opset version (default DEFAULT_OPSET). */
  opset?: number;
  /** The float type activations are computed in; weights are cast to it by weight(). Default float32. */
  computeType?: FloatType;
  /**
   * How linear() multiplies by a [out, in] weight: 'fused' = com.microsoft.FusedMatMul with transB (the weight is
   * used as stored), 'transpose' = MatMul(x, Transpose(W)) with plain ONNX ops (ORT folds the Transpose at load,
   * which costs time and a second copy at peak). Default 'fused'.
   */
  linear?: 'fused' | 'transpose';
  /**
   * fp8 weights: 'dequantize' = DequantizeLinear per run (they stay 1 byte per value; CPU and CUDA), 'widen' = a
   * Cast and Mul that ORT folds at load into the compute type (WebGPU has no fp8 DequantizeLinear and no Size for the
   * gate, so those nodes would run on the CPU in every block). Default: 'widen' in float16 graphs (WebGPU's form),
   * else 'dequantize'.
   */
  fp8?: 'dequantize' | 'widen';
  doc?: string;
}

type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array;

function encodeAttr(name: string, v: AttrValue): AttributeProtoObject {
  if (typeof v === 'number')
    return Number.isInteger(v) ? { name, type: AttributeType.INT, i: v } : { name, type: AttributeType.FLOAT, f: v };
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: Buffer.from(v, 'utf8') };
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string'))
      return { name, type: AttributeType.STRINGS, strings: (v as string[]).map((s) => Buffer.from(s, 'utf8')) };
    const nums = v as number[];
    return nums.every(Number.isInteger)
      ? { name, type: AttributeType.INTS, ints: nums }
      : { name, type: AttributeType.FLOATS, floats: nums };
  }
  if (v.kind === 'float') return { name, type: AttributeType.FLOAT, f: v.value };
  if (v.kind === 'graph') return { name, type: AttributeType.GRAPH, g: v.value };
  return { name, type: AttributeType.FLOATS, floats: v.value };
}

function bytesOf(data: TypedArray | Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function valueInfo(name: string, dtype: DType, shape: Dim[] | undefined): ValueInfoProtoObject {
  const tensor_type: ValueInfoProtoObject['type']['tensor_type'] = { elem_type: ONNX_DTYPE[dtype] };
  if (shape)
    tensor_type.shape = { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) };
  return { name, type: { tensor_type } };
}

export class Graph {
  readonly opset: number;
  readonly computeType: FloatType;
  readonly linearImpl: 'fused' | 'transpose';
  private readonly nodes: NodeProtoObject[] = [];
  /** Where op() appends: the root node list, or the body of the subgraph being built (innermost last). */
  private readonly bodies: NodeProtoObject[][] = [];
  private readonly inits: TensorProtoObject[] = [];
  private readonly externals: { proto: TensorProtoObject; ext: ExternalData }[] = [];
  private readonly inputs: ValueInfoProtoObject[] = [];
  private readonly outputs: ValueInfoProtoObject[] = [];
  private readonly names = new Set<string>();
  private readonly counters = new Map<string, number>();
  private readonly constCache = new Map<string, Value>();
  private readonly weightCache = new Map<string, Value>();
  private readonly quantCache = new Map<string, QuantLinear>();
  private readonly quantParts = new Map<string, { packed: Value; scales: Value; zeros?: Value; mins?: Value }>();
  private gate?: { on: Value; one?: Value };
  private readonly domains = new Set<string>();
  private scopes: string[] = [];

  constructor(
    readonly name: string,
    private readonly options: GraphOptions = {},
  ) {
    this.opset = options.opset ?? DEFAULT_OPSET;
    this.computeType = options.computeType ?? 'float32';
    this.linearImpl = options.linear ?? 'fused';
  }

  /** A fresh name under the current scope: `<scope>/<base>` or `<scope>/<base>_<n>`. */
  fresh(base: string): string {
    const stem = [...this.scopes, base].join('/');
    let n = this.counters.get(stem) ?? 0;
    let candidate = n === 0 ? stem : `${stem}_${n}`;
    while (this.names.has(candidate)) candidate = `${stem}_${++n}`;
    this.counters.set(stem, n + 1);
    this.names.add(candidate);
    return candidate;
  }

  private claim(name: string): string {
    if (this.names.has(name))
      throw new Error(`internal error: graph "${this.name}" already has a value named "${name}"`);
    this.names.add(name);
    return name;
  }

  /** Runs fn with names prefixed by `prefix/` (nested scopes join with '/'), for readable node names. */
  scope<T>(prefix: string, fn: () => T): T {
    this.scopes.push(prefix);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** A graph input. Use symbolic dims ('N', 'L') for sizes that vary between runs. */
  input(name: string, dtype: DType, shape: Dim[]): Value {
    this.inputs.push(valueInfo(this.claim(name), dtype, shape));
    return new Value(this, name, dtype);
  }

  /** Marks v as a graph output under `name` (an Identity node is added when the value has another name). */
  output(v: Value, name: string, dtype: DType = v.dtype ?? 'float32', shape?: Dim[]): void {
    let out = v.name;
    if (out !== name) {
      this.target.push({ input: [v.name], output: [this.claim(name)], op_type: 'Identity', name: `${name}/Identity` });
      out = name;
    }
    this.outputs.push(valueInfo(out, dtype, shape));
  }

  /** An initializer from bytes on disk (external data) or in memory. The name must be unique in the graph. */
  initializer(name: string, src: TensorSource): Value {
    return this.addInitializer(this.claim(name), src);
  }

  private addInitializer(name: string, src: TensorSource): Value {
    const proto: TensorProtoObject = { name, dims: src.shape, data_type: ONNX_DTYPE[src.dtype] };
    const count = src.shape.reduce((a, b) => a * b, 1);
    const want = count * DTYPE_BYTES[src.dtype];
    if (src.external) {
      if (src.external.length !== want) {
        throw new Error(
          `tensor ${name}: ${src.external.length} bytes in ${src.external.file} but shape [${src.shape.join(',')}] of ${src.dtype} needs ${want}`,
        );
      }
      proto.data_location = DataLocation.EXTERNAL;
      this.externals.push({ proto, ext: src.external });
    } else if (src.data) {
      if (src.data.byteLength !== want)
        throw new Error(
          `tensor ${name}: ${src.data.byteLength} bytes given, shape [${src.shape.join(',')}] of ${src.dtype} needs ${want}`,
        );
      proto.raw_data = src.data;
    } else {
      throw new Error(`tensor ${name}: neither external data nor bytes given`);
    }
    this.inits.push(proto);
    return new Value(this, name, src.dtype);
  }

  /**
   * A model weight in the compute type: the initializer keeps the checkpoint's dtype (bf16 stays bf16 on disk)
   * and a Cast converts it inside the graph. Cached by name, so a weight used twice is loaded once.
   * fp8 weights go through DequantizeLinear, which ORT does not constant-fold: they stay 1 byte per value in
   * memory and are widened per run (a Cast would be folded into a full-width copy at load).
   */
  weight(name: string, src: TensorSource): Value {
    const hit = this.weightCache.get(name);
    if (hit) return hit;
    if (src.nbits || src.encoded || src.concat?.some((p) => p.nbits || p.encoded)) {
      throw new Error(
        `internal error: ${name} is a quantized linear weight; only linear() can read it (use linearWeight)`,
      );
    }
    // Always in the root graph, even when first used inside a subgraph: every branch and loop body then reads the
    // one converted copy (ORT folds a Cast per graph it sits in, so a Cast inside a body would be a second copy).
    return this.atRoot(() => this.castWeight(name, src));
  }

  /**
   * Rows `ids` of an embedding table [V, D] → [..., D] in the compute type. A table in MatMulNBits form (a GGUF
   * file's quantized token embedding) is gathered as stored and only the gathered rows are dequantized, by the same
   * formula as the linear layers' (w = scale·(q − zero) − min, in float32), so the table stays small and exact.
   */
  embedding(name: string, src: TensorSource, ids: Value): Value {
    if (!src.nbits) return this.op('Gather', [this.weight(name, src), ids], { axis: 0 });
    const q = src.nbits;
    const [, D] = src.shape as [number, number];
    const kb = D / q.block;
    const parts = this.quantInitializers(name, q);
    const rows = (t: Value) => this.op('Gather', [t, ids], { axis: 0 });
    const f32 = (x: Value) => this.op('Cast', [x], { to: ONNX_DTYPE.float32 }, { dtype: 'float32' });
    /** Scales and mins may be stored in a 16-bit type; the rows are dequantized in float32 (Sub/Mul take one type). */
    const asF32 = (x: Value) => (x.dtype === 'float32' ? x : f32(x));
    /**
     * Packed codes [..., n/2] → [..., n] (4-bit: low nibble first), as float32. The nibbles are split with int32
     * Div/Mul/Sub (hi = b / 16, lo = b − 16·hi: exact for bytes), not BitShift/BitwiseAnd, which have no CUDA or WebGPU
     * kernel in ONNX Runtime 1.29 (a CPU fallback on every T5 call; kernels/README.md).
     */
    const unpack = (packed: Value, count: number) => {
      if (q.bits === 8) return f32(packed);
      const b = this.op('Cast', [packed], { to: ONNX_DTYPE.int32 }, { dtype: 'int32' });
      const hi = this.op('Div', [b, this.constant([16], [], 'int32')]);
      const lo = this.op('Sub', [b, this.op('Mul', [hi, this.constant([16], [], 'int32')])]);
      const pairs = this.op(
        'Concat',
        [this.op('Unsqueeze', [lo, this.ints([-1])]), this.op('Unsqueeze', [hi, this.ints([-1])])],
        { axis: -1 },
      );
      const flat = this.op('Reshape', [
        pairs,
        this.op(
          'Concat',
          [this.op('Shape', [packed], { end: -1 }, { dtype: 'int64' }), this.ints([2 * Math.ceil(count / 2)])],
          { axis: 0 },
          { dtype: 'int64' },
        ),
      ]);
      return f32(this.op('Slice', [flat, this.ints([0]), this.ints([count]), this.ints([-1])]));
    };
    const lead = this.op('Shape', [ids], {}, { dtype: 'int64' });
    const perBlock = (x: Value) => this.op('Unsqueeze', [x, this.ints([-1])]);
    const shape = (dims: number[]) => this.op('Concat', [lead, this.ints(dims)], { axis: 0 }, { dtype: 'int64' });
    const bytes = this.op('Reshape', [rows(parts.packed), shape([(kb * q.block * q.bits) / 8])]);
    const codes = this.op('Reshape', [unpack(bytes, kb * q.block), shape([kb, q.block])]);
    const zero = parts.zeros
      ? perBlock(unpack(rows(parts.zeros), kb))
      : this.constant([2 ** (q.bits - 1)], [], 'float32');
    let w = this.op(
      'Mul',
      [perBlock(asF32(rows(parts.scales))), this.op('Sub', [codes, zero])],
      {},
      { dtype: 'float32' },
    );
    if (parts.mins) w = this.op('Sub', [w, perBlock(asF32(rows(parts.mins)))]);
    const out = this.op('Reshape', [w, shape([D])], {}, { dtype: 'float32' });
    return this.computeType === 'float32'
      ? out
      : this.op('Cast', [out], { to: ONNX_DTYPE[this.computeType] }, { dtype: this.computeType });
  }

  /**
   * fp8 weights created from here on are widened only once `x` (a root-graph value, e.g. the block's input) exists.
   * ONNX has no control edges and DequantizeLinear of an initializer has no other input, so ORT could widen every
   * fp8 weight at the start of a run and hold all of them (measured on the wide preset: the whole fp32 copy, peak
   * above bf16's). Depending on the block's input keeps one block's widened weights alive at a time.
   */
  gateWeightsOn(x: Value): void {
    if (this.bodies.length === 0) this.gate = { on: x };
  }

  /** float32 1, computed from the gate's value at run time (its size, not its data), so it cannot be folded. */
  private gateOne(): Value | undefined {
    const gate = this.gate;
    if (!gate) return undefined;
    gate.one ??= this.op(
      'Cast',
      [
        this.op(
          'Greater',
          [this.op('Size', [gate.on], {}, { dtype: 'int64' }), this.constant([-1], [], 'int64')],
          {},
          { dtype: 'bool' },
        ),
      ],
      { to: ONNX_DTYPE.float32 },
      { dtype: 'float32' },
    );
    return gate.one;
  }

  /**
   * A linear layer's [out, in] weight: dense (as weight()) or MatMulNBits parts whose scales are in `type` (the
   * activations' type; default the compute type).
   */
  linearWeight(name: string, src: TensorSource, type: FloatType = this.computeType): LinearWeight {
    if (!src.nbits) return this.weight(name, src);
    const key = `${name}|${type}`;
    const hit = this.quantCache.get(key);
    if (hit) return hit;
    const q = src.nbits;
    const [N, K] = src.shape as [number, number];
    const parts = this.quantInitializers(name, q);
    const w = this.atRoot((): QuantLinear => ({
      kind: 'nbits',
      name,
      N,
      K,
      bits: q.bits,
      block: q.block,
      packed: parts.packed,
      zeros: parts.zeros,
      minsT:
        parts.mins && this.op('Transpose', [parts.mins], { perm: [1, 0] }, { name: `${name}#mins/Transpose_${type}` }),
      // MatMulNBits takes scales in the activations' type; the Cast of this small table is folded at load.
      scales:
        type === 'float32'
          ? parts.scales
          : this.op(
              'Cast',
              [parts.scales],
              { to: ONNX_DTYPE[type] },
              { name: `${name}#scales/Cast_${type}`, dtype: type },
            ),
    }));
    this.quantCache.set(key, w);
    return w;
  }

  /** The initializers of a MatMulNBits tensor, once per name, in the root graph (linear layers and embeddings share them). */
  private quantInitializers(
    name: string,
    q: NBitsParts,
  ): { packed: Value; scales: Value; zeros?: Value; mins?: Value } {
    let parts = this.quantParts.get(name);
    if (!parts) {
      parts = this.atRoot(() => ({
        packed: this.initializer(`${name}#q`, q.packed),
        scales: this.initializer(`${name}#scales`, q.scales),
        zeros: q.zeros && this.initializer(`${name}#zeros`, q.zeros),
        mins: q.mins && this.initializer(`${name}#mins`, q.mins),
      }));
      this.quantParts.set(name, parts);
    }
    return parts;
  }

  private castWeight(name: string, src: TensorSource): Value {
    const parts = src.concat ?? [src];
    const read = (part: TensorSource, i: number) => {
      const raw = this.initializer(src.concat ? `${name}#${i}` : name, part);
      if (part.dtype !== 'float8e4m3fn') return raw;
      if ((this.options.fp8 ?? (this.computeType === 'float16' ? 'widen' : 'dequantize')) === 'widen') {
        const wide = this.op(
          'Cast',
          [raw],
          { to: ONNX_DTYPE.float32 },
          { name: `${raw.name}/Widen`, dtype: 'float32' },
        );
        return part.scale === undefined || part.scale === 1
          ? wide
          : this.op('Mul', [wide, this.constant([part.scale], [], 'float32')], {}, { dtype: 'float32' });
      }
      const one = this.gateOne();
      const stored = this.constant([part.scale ?? 1], [], 'float32');
      const scale = one ? this.op('Mul', [stored, one], {}, { dtype: 'float32' }) : stored;
      return this.op('DequantizeLinear', [raw, scale], {}, { name: `${raw.name}/Dequantize`, dtype: 'float32' });
    };
    const values = parts.map(read);
    const raw =
      values.length > 1
        ? this.op('Concat', values, { axis: 0 }, { name: `${name}/Concat`, dtype: values[0]!.dtype })
        : values[0]!;
    const v =
      raw.dtype === this.computeType
        ? raw
        : this.op(
            'Cast',
            [raw],
            { to: ONNX_DTYPE[this.computeType] },
            { name: `${name}/Cast`, dtype: this.computeType },
          );
    this.weightCache.set(name, v);
    return v;
  }

  private get target(): NodeProtoObject[] {
    return this.bodies.at(-1) ?? this.nodes;
  }

  private atRoot<T>(fn: () => T): T {
    const saved = this.bodies.splice(0);
    try {
      return fn();
    } finally {
      this.bodies.push(...saved);
    }
  }

  /**
   * A subgraph (an If branch, a Loop body) built by `body` from fresh inputs; it may read any value of the
   * enclosing graphs (weights, constants, earlier nodes) by name, as ONNX allows. Its outputs pass through
   * Identity so that a branch may return an outer value or one of its own inputs unchanged.
   */
  subgraph(
    name: string,
    inputs: { name: string; dtype: DType; shape?: Dim[] }[],
    body: (...ins: Value[]) => Value[],
  ): GraphAttr {
    const nodes: NodeProtoObject[] = [];
    this.bodies.push(nodes);
    try {
      return this.scope(name, () => {
        const ins = inputs.map((i) => new Value(this, this.fresh(i.name), i.dtype));
        const outs = body(...ins);
        const output = outs.map((v) => {
          const out = this.fresh(`${name}_out`);
          nodes.push({ input: [v.name], output: [out], op_type: 'Identity', name: `${out}/Identity` });
          return valueInfo(out, v.dtype ?? this.computeType, undefined);
        });
        return {
          kind: 'graph' as const,
          value: {
            name: this.fresh(name),
            node: nodes,
            initializer: [],
            input: ins.map((v, k) => valueInfo(v.name, v.dtype!, inputs[k]!.shape)),
            output,
          },
        };
      });
    } finally {
      this.bodies.pop();
    }
  }

  /** A small in-memory constant (shape tables, axes, scalars), deduplicated by content. */
  constant(values: ArrayLike<number> | TypedArray, dims: number[], dtype: DType): Value {
    let data: Uint8Array;
    switch (dtype) {
      case 'float32':
        data = bytesOf(Float32Array.from(values as ArrayLike<number>));
        break;
      case 'float64':
        data = bytesOf(Float64Array.from(values as ArrayLike<number>));
        break;
      case 'int32':
        data = bytesOf(Int32Array.from(values as ArrayLike<number>));
        break;
      case 'int64':
        data = bytesOf(BigInt64Array.from(Array.from(values as ArrayLike<number>, (x) => BigInt(x))));
        break;
      case 'uint8':
      case 'bool':
      case 'float8e4m3fn':
        data = bytesOf(Uint8Array.from(values as ArrayLike<number>));
        break;
      case 'int8':
        data = bytesOf(Int8Array.from(values as ArrayLike<number>));
        break;
      case 'float16':
      case 'bfloat16':
        if (!(values instanceof Uint16Array))
          throw new Error(`constant of ${dtype} needs its raw bits as a Uint16Array`);
        data = bytesOf(values);
        break;
    }
    const key = `${dtype}|${dims.join(',')}|${Buffer.from(data).toString('base64')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const v = this.addInitializer(this.fresh('const'), { dtype, shape: dims, data: new Uint8Array(data) });
    this.constCache.set(key, v);
    return v;
  }

  /** A 1-D int64 constant (shapes, axes, starts/ends). */
  ints(values: number[]): Value {
    return this.constant(values, [values.length], 'int64');
  }

  /** A constant tensor of one repeated value, in the compute type unless said otherwise. */
  fill(dims: number[], value: number, dtype: DType = this.computeType): Value {
    const n = dims.reduce((a, b) => a * b, 1);
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const f = this.constant(new Float32Array(n).fill(value), dims, 'float32');
      return this.op('Cast', [f], { to: ONNX_DTYPE[dtype] }, { dtype });
    }
    return this.constant(new Array<number>(n).fill(value), dims, dtype);
  }

  /** A scalar (rank 0) in the compute type unless said otherwise. */
  scalar(value: number, dtype: DType = this.computeType): Value {
    if (dtype === 'float16' || dtype === 'bfloat16') {
      // Stored as float32 and cast, so callers need no 16-bit conversion.
      const f = this.constant([value], [], 'float32');
      return this.op('Cast', [f], { to: ONNX_DTYPE[dtype] }, { dtype });
    }
    return this.constant([value], [], dtype);
  }

  /** Adds one node with one output. `null` inputs are written as '' (an omitted optional input). */
  op(type: string, inputs: (Value | null)[], attrs: Attrs = {}, opts: OpOptions = {}): Value {
    const [out] = this.opN(type, inputs, 1, attrs, opts);
    return out!;
  }

  /** Adds one node with `outputs` outputs. */
  opN(type: string, inputs: (Value | null)[], outputs: number, attrs: Attrs = {}, opts: OpOptions = {}): Value[] {
    for (const v of inputs)
      if (v && v.graph !== this) throw new Error(`internal error: value ${v.name} belongs to another graph`);
    const nodeName = opts.name ? this.claimNode(opts.name) : this.fresh(type);
    const outNames = Array.from({ length: outputs }, (_, i) =>
      outputs === 1 ? this.claimOut(nodeName) : this.claimOut(`${nodeName}:${i}`),
    );
    const attribute = Object.entries(attrs)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => encodeAttr(k, v!));
    const node: NodeProtoObject = {
      input: inputs.map((v) => v?.name ?? ''),
      output: outNames,
      name: nodeName,
      op_type: type,
      attribute,
    };
    if (opts.domain) {
      node.domain = opts.domain;
      this.domains.add(opts.domain);
    }
    this.target.push(node);
    const dtype = opts.dtype ?? inputs.find((v) => v)?.dtype;
    return outNames.map((n) => new Value(this, n, dtype));
  }

  private claimNode(name: string): string {
    const full = [...this.scopes, name].join('/');
    return this.names.has(full) ? this.fresh(name) : this.claim(full);
  }

  private claimOut(name: string): string {
    // Node names and value names share one namespace here; the node's own name was claimed already.
    const out = `${name}:out`;
    return this.names.has(out) ? this.fresh(out) : this.claim(out);
  }

  /**
   * The folder ORT must resolve external data against (session option
   * `session.model_external_initializers_file_folder_path`): the deepest folder that holds every weight file.
   * Undefined when the graph has no external data.
   */
  externalDataFolder(): string | undefined {
    if (this.externals.length === 0) return undefined;
    let root = path.dirname(this.externals[0]!.ext.file);
    for (const { ext } of this.externals) {
      while (path.relative(root, ext.file).startsWith('..')) {
        const up = path.dirname(root);
        if (up === root) break;
        root = up;
      }
    }
    return root;
  }

  /** The ModelProto object; external locations are written relative to externalDataFolder(). */
  toModel(): ModelProtoObject {
    if (this.outputs.length === 0) throw new Error(`internal error: graph "${this.name}" has no outputs`);
    const folder = this.externalDataFolder();
    for (const { proto, ext } of this.externals) {
      if (!path.isAbsolute(ext.file))
        throw new Error(`internal error: external data path must be absolute: ${ext.file}`);
      // ORT rejects absolute locations and '..'; a path below the folder (POSIX separators) is accepted.
      const location = path.relative(folder!, ext.file).split(path.sep).join('/');
      proto.external_data = [
        { key: 'location', value: location },
        { key: 'offset', value: String(ext.offset) },
        { key: 'length', value: String(ext.length) },
      ];
    }
    const opset_import = [
      { domain: '', version: this.opset },
      ...[...this.domains].map((domain) => ({ domain, version: 1 })),
    ];
    return {
      ir_version: IR_VERSION,
      opset_import,
      producer_name: 'scenewright',
      producer_version: '0.1.0',
      doc_string: this.options.doc,
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    };
  }

  toBytes(): Uint8Array {
    return encodeModel(this.toModel());
  }

  /** Whether any node, in the root graph or a subgraph, is of this op type. */
  usesOp(type: string): boolean {
    const visit = (nodes: NodeProtoObject[]): boolean =>
      nodes.some(
        (n) => n.op_type === type || (n.attribute ?? []).some((a) => a.g !== undefined && visit(a.g.node ?? [])),
      );
    return visit(this.nodes);
  }

  /** Node count, for logs and tests. */
  get nodeCount(): number {
    return this.nodes.length;
  }
}
