import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';

// protobufjs reflection over our hand-written onnx.proto subset: one parse at first use, no generated
// code to keep in sync, and the field numbers live in a file that reads like the ONNX spec.
// keepCase keeps the spec's snake_case names (ir_version, op_type, ...) in the JS objects.

/** Plain-object forms of the messages, as protobufjs reads and writes them (snake_case, as in the spec). */
export interface StringStringEntry {
  key: string;
  value: string;
}
export interface TensorProtoObject {
  name: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int64_data?: number[];
  external_data?: StringStringEntry[];
  data_location?: number;
  doc_string?: string;
}
export interface AttributeProtoObject {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProtoObject;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  g?: GraphProtoObject;
}
export interface NodeProtoObject {
  input: string[];
  output: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: AttributeProtoObject[];
  doc_string?: string;
}
export interface DimensionObject {
  dim_value?: number;
  dim_param?: string;
}
export interface ValueInfoProtoObject {
  name: string;
  type: { tensor_type: { elem_type: number; shape?: { dim: DimensionObject[] } } };
  doc_string?: string;
}
export interface GraphProtoObject {
  name: string;
  node: NodeProtoObject[];
  initializer: TensorProtoObject[];
  input: ValueInfoProtoObject[];
  output: ValueInfoProtoObject[];
  value_info?: ValueInfoProtoObject[];
  doc_string?: string;
}
export interface ModelProtoObject {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  producer_name?: string;
  producer_version?: string;
  doc_string?: string;
  graph: GraphProtoObject;
  metadata_props?: StringStringEntry[];
}

/** AttributeProto.AttributeType values used by the builder. */
export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
} as const;
/** TensorProto.DataLocation values. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

let modelType: protobuf.Type | undefined;

function model(): protobuf.Type {
  if (!modelType) {
    const text = readFileSync(new URL('./onnx.proto', import.meta.url), 'utf8');
    const root = protobuf.parse(text, { keepCase: true }).root;
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

/** Serialises a model object to ONNX protobuf bytes. */
export function encodeModel(m: ModelProtoObject): Uint8Array {
  const type = model();
  const err = type.verify(m);
  if (err) throw new Error(`internal error: ONNX model object does not fit onnx.proto: ${err}`);
  return type.encode(m).finish();
}

/** Parses ONNX protobuf bytes back into plain objects (int64 as numbers, bytes as Uint8Array); for tests and debugging. */
export function decodeModel(bytes: Uint8Array): ModelProtoObject {
  const type = model();
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false, arrays: true }) as ModelProtoObject;
}
