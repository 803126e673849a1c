/** GGUF (ggml) weights files: reading, block formats, MatMulNBits repacking, writing, T5 names. */
export { GgufFile, type GgufTensorInfo } from './file.ts';
export {
  decodeRows,
  encodedBytes,
  GGML_TYPES,
  ggmlTypeById,
  ggmlTypeByName,
  ggmlTypeName,
  isQuantized,
  QUANTIZED_FORMATS,
  UNSUPPORTED_GGML_TYPES,
  type GgmlType,
  type QuantizedFormat,
  type RowFormat,
} from './blocks.ts';
export { nbitsFormOf, toNBits } from './to-nbits.ts';
export { encodeGguf, encodeRows, writeGguf, type GgufInput, type GgufTensorInput } from './writer.ts';
export { t5GgufName, t5HfToGgufName } from './t5-names.ts';
export type { GgufValue, TypedValue } from './types.ts';
