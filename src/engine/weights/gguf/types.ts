/**
 * GGUF's metadata value types (the gguf spec's `gguf_metadata_value_type`), by id. 64-bit integers are bigints
 * in JS; arrays hold values of one element type.
 */
export const VALUE_TYPES = [
  'u8',
  'i8',
  'u16',
  'i16',
  'u32',
  'i32',
  'f32',
  'bool',
  'string',
  'array',
  'u64',
  'i64',
  'f64',
] as const;
export type ValueTypeName = (typeof VALUE_TYPES)[number];
export type ScalarTypeName = Exclude<ValueTypeName, 'array'>;

export type GgufValue = string | number | boolean | bigint | GgufValue[];

/** A metadata value with its GGUF type spelled out (the writer infers one otherwise). For arrays, `type` is the element type. */
export interface TypedValue {
  type: ScalarTypeName;
  value: GgufValue;
}

/** Bytes of one scalar of a fixed-size type (strings and arrays are variable). */
export const SCALAR_BYTES: Partial<Record<ValueTypeName, number>> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  u64: 8,
  i64: 8,
  f64: 8,
};

export const GGUF_MAGIC = 'GGUF';
export const DEFAULT_ALIGNMENT = 32;
/** ComfyUI-GGUF's key for a tensor it stored reshaped (an array of int32 in PyTorch order). */
export const ORIG_SHAPE_PREFIX = 'comfy.gguf.orig_shape.';
/** ggml's GGML_MAX_DIMS. */
export const MAX_DIMS = 4;
