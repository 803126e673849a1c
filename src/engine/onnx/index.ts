/**
 * ONNX graph builder: graphs are written in TypeScript and serialised to ONNX protobuf in memory.
 *
 *   const g = new Graph('name', { computeType: 'float32' });     // IR 10, ai.onnx opset 23 (+ com.microsoft v1 if used)
 *   const x = g.input('x', 'float32', ['B', 'N', 64]);           // symbolic or fixed dims
 *   const w = g.weight('proj.weight', src);                       // src: TensorSource (external bytes in a .safetensors)
 *   const y = linear(x, w, g.weight('proj.bias', bsrc));          // helpers in nn.ts, plain ops in ops.ts
 *   g.output(y, 'sample');
 *   const bytes = g.toBytes();                                     // ModelProto bytes
 *   const folder = g.externalDataFolder();                         // give to ORT (see src/engine/runtime)
 *
 * - g.op(type, inputs, attrs, { domain }) / g.opN(...) add any node; attrs: integers → INT, other numbers → FLOAT,
 *   attr.float(1) forces a float; arrays likewise; strings → STRING.
 * - g.initializer(name, src) adds a tensor as it is; g.weight(name, src) adds it and casts it to the compute type
 *   (bf16/f16 weights stay 16-bit on disk and are cast inside the graph). g.constant / g.ints / g.scalar / g.fill
 *   add small in-memory constants (deduplicated).
 * - g.scope('transformer_blocks.0', () => ...) prefixes node names for readable graphs and profiles.
 * - Graph I/O should be float32 or float16: onnxruntime-node cannot pass bfloat16 tensors.
 *
 * External data: each TensorSource.external names a real file path (symlinks resolved), an offset and a length.
 * Locations are written relative to externalDataFolder() (the deepest folder holding every file), because ORT ≥ 1.24
 * rejects absolute locations, '..' and symlinks leaving that folder.
 */
export * from './graph.ts';
export * from './ops.ts';
export * from './nn.ts';
export * from './control.ts';
export { decodeModel, encodeModel } from './proto.ts';
