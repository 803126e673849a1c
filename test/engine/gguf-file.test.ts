import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { t5EncoderShapes } from '../../src/engine/checkpoint/component-specs.ts';
import { WeightsError } from '../../src/engine/weights/safetensors.ts';
import { decodeRows } from '../../src/engine/weights/gguf/blocks.ts';
import { GgufFile } from '../../src/engine/weights/gguf/index.ts';
import { t5GgufName, t5HfToGgufName } from '../../src/engine/weights/gguf/t5-names.ts';
import { encodeGguf, encodeRows, writeGguf, type GgufInput } from '../../src/engine/weights/gguf/writer.ts';
import { randFloats } from './gguf-fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-gguf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fileOf = (bytes: Uint8Array) => {
  const p = path.join(tmp, `f${n++}.gguf`);
  writeFileSync(p, bytes);
  return p;
};

const w1 = randFloats(8 * 64, 1, 0.5);
const w2 = randFloats(4 * 256, 2, 0.5);
const norm = randFloats(64, 3);
const input: GgufInput = {
  metadata: {
    'general.architecture': 'flux',
    'general.quantization_version': { type: 'u32', value: 2 },
    'general.file_type': 7,
    'test.f32': 0.5,
    'test.bool': true,
    'test.u64': { type: 'u64', value: 2n ** 40n },
    'test.i64': -5n,
    'test.f64': { type: 'f64', value: 0.1 },
    'test.u8': { type: 'u8', value: 255 },
    'test.i16': { type: 'i16', value: -300 },
    'test.strings': ['a', 'bé', ''],
    'test.nested': [[1, 2], [3]],
    'test.floats': [0, 0.5, 2],
  },
  tensors: [
    {
      name: 'double_blocks.0.img_attn.qkv.weight',
      format: 'Q8_0',
      shape: [8, 64],
      data: encodeRows('Q8_0', w1, 8, 64),
    },
    { name: 'double_blocks.0.img_mlp.0.weight', format: 'Q4_K', shape: [4, 256], data: encodeRows('Q4_K', w2, 4, 256) },
    {
      name: 'double_blocks.0.img_attn.norm.query_norm.scale',
      format: 'F32',
      shape: [64],
      data: encodeRows('F32', norm, 1, 64),
    },
    { name: 'img_in.weight', format: 'F16', shape: [2, 4, 8], data: encodeRows('F16', w1.subarray(0, 64), 8, 8) },
    { name: 'txt_in.weight', format: 'BF16', shape: [4, 16], data: encodeRows('BF16', w1.subarray(0, 64), 4, 16) },
    // stored as [4, 256] like ComfyUI-GGUF's reshape, PyTorch shape [16, 64]: rows of 64 share Q4_K super-blocks
    {
      name: 'reshaped.weight',
      format: 'Q4_K',
      shape: [16, 64],
      storedShape: [4, 256],
      data: encodeRows('Q4_K', w2, 4, 256),
    },
    // stored as [2, 64], PyTorch shape [4, 32] (rows of one Q8_0 block each)
    {
      name: 'reshaped8.weight',
      format: 'Q8_0',
      shape: [4, 32],
      storedShape: [2, 64],
      data: encodeRows('Q8_0', w1.subarray(0, 128), 2, 64),
    },
  ],
};
const good = encodeGguf(input);
const goodPath = fileOf(good);

/** Byte position of a tensor's info (just after its name) in a file's header. */
function infoAt(buf: Buffer, name: string): { nDims: number; ne: number; type: number; offset: number } {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(name)));
  const at = buf.indexOf(Buffer.concat([len, Buffer.from(name)])) + 8 + Buffer.byteLength(name);
  const nd = buf.readUInt32LE(at);
  return { nDims: at, ne: at + 4, type: at + 4 + 8 * nd, offset: at + 8 + 8 * nd };
}
const patched = (edit: (b: Buffer) => void) => {
  const b = Buffer.from(good);
  edit(b);
  return fileOf(b);
};
const message = (p: string) => {
  try {
    new GgufFile(p, 'model.gguf');
  } catch (e) {
    expect(e).toBeInstanceOf(WeightsError);
    return (e as Error).message;
  }
  throw new Error('expected a WeightsError');
};

describe('GgufFile reads what the writer wrote', () => {
  const f = new GgufFile(goodPath, 'flux-Q8_0.gguf');

  it('header: version, metadata of every value type, names in file order', () => {
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(32);
    expect(f.metadata).toMatchObject({
      'general.architecture': 'flux',
      'general.quantization_version': 2,
      'general.file_type': 7,
      'test.bool': true,
      'test.u64': 2n ** 40n,
      'test.i64': -5n,
      'test.f64': 0.1,
      'test.u8': 255,
      'test.i16': -300,
      'test.strings': ['a', 'bé', ''],
      'test.nested': [[1, 2], [3]],
      'comfy.gguf.orig_shape.reshaped.weight': [16, 64],
    });
    expect(f.metadata['test.f32']).toBe(0.5);
    expect(f.metadataTypes['general.quantization_version']).toEqual({ type: 'u32' });
    expect(f.metadataTypes['general.file_type']).toEqual({ type: 'i32' });
    expect(f.metadataTypes['test.strings']).toEqual({ type: 'array', elem: 'string' });
    // an array's element type is the widest its values need, not its first value's
    expect(f.metadata['test.floats']).toEqual([0, 0.5, 2]);
    expect(f.metadataTypes['test.floats']).toEqual({ type: 'array', elem: 'f32' });
    expect(() => encodeGguf({ metadata: { mixed: ['a', 1] }, tensors: [] })).toThrow(
      /GGUF metadata mixed: an array must hold values of one type/,
    );
    expect(f.names()).toEqual(input.tensors.map((t) => t.name));
  });

  it('shapes in PyTorch order (ne reversed, or comfy.gguf.orig_shape), dtypes and formats', () => {
    expect(f.info('double_blocks.0.img_attn.qkv.weight')).toMatchObject({
      dtype: 'float32',
      shape: [8, 64],
      format: 'Q8_0',
      ne: [64, 8],
    });
    expect(f.info('img_in.weight')).toMatchObject({
      dtype: 'float16',
      shape: [2, 4, 8],
      format: undefined,
      ne: [8, 4, 2],
    });
    expect(f.info('txt_in.weight')).toMatchObject({ dtype: 'bfloat16', shape: [4, 16] });
    expect(f.info('reshaped.weight')).toMatchObject({ shape: [16, 64], ne: [256, 4], format: 'Q4_K' });
    expect(f.has('nope')).toBe(false);
    expect(() => f.info('nope')).toThrow(/flux-Q8_0.gguf: no tensor named nope/);
  });

  it('sources: plain tensors as external data in place, quantized ones as encoded rows', () => {
    const bytes = readFileSync(goodPath);
    const norm32 = f.source('double_blocks.0.img_attn.norm.query_norm.scale');
    expect(norm32).toMatchObject({ dtype: 'float32', shape: [64], external: { file: f.realPath, length: 256 } });
    expect(norm32.external!.offset % 32).toBe(0);
    expect(
      new Float32Array(
        bytes.buffer.slice(
          bytes.byteOffset + norm32.external!.offset,
          bytes.byteOffset + norm32.external!.offset + 256,
        ),
      ),
    ).toEqual(norm);
    const q = f.source('double_blocks.0.img_attn.qkv.weight');
    expect(q.external).toBeUndefined();
    expect(q).toMatchObject({ dtype: 'float32', shape: [8, 64], encoded: { format: 'Q8_0', rowBytes: 68 } });
    // row r is bytes [r·rowBytes, (r+1)·rowBytes): row 5 alone decodes to row 5 of the whole tensor
    const e = q.encoded!;
    const row5 = bytes.subarray(e.external.offset + 5 * e.rowBytes, e.external.offset + 6 * e.rowBytes);
    expect(decodeRows('Q8_0', row5, 1, 64)).toEqual(
      f.readFloat32('double_blocks.0.img_attn.qkv.weight').subarray(5 * 64, 6 * 64),
    );
    expect(f.source('reshaped8.weight').encoded).toMatchObject({ format: 'Q8_0', rowBytes: 34 });
  });

  it('rows of an encoded source are byte ranges (a fused q|k|v split by rows)', () => {
    const name = 'double_blocks.0.img_mlp.0.weight';
    const e = f.source(name).encoded!;
    const bytes = readFileSync(goodPath).subarray(e.external.offset + e.rowBytes, e.external.offset + 3 * e.rowBytes);
    expect(decodeRows('Q4_K', bytes, 2, 256)).toEqual(f.readFloat32(name).subarray(256, 768));
  });

  it('readFloat32 decodes every tensor (writer → reader round trip of the values)', () => {
    expect(f.readFloat32('double_blocks.0.img_attn.norm.query_norm.scale')).toEqual(norm);
    expect(f.readFloat32('double_blocks.0.img_attn.qkv.weight')).toEqual(
      decodeRows('Q8_0', encodeRows('Q8_0', w1, 8, 64), 8, 64),
    );
    expect(f.readFloat32('reshaped.weight')).toEqual(decodeRows('Q4_K', encodeRows('Q4_K', w2, 4, 256), 4, 256));
  });

  it('a quantized tensor whose reshaped rows are not whole blocks is refused by source(), readable by readFloat32', () => {
    expect(() => f.source('reshaped.weight')).toThrow(
      /reshaped.weight is Q4_K stored reshaped.*rows of 64 values are not whole 256-value blocks/,
    );
    expect(f.readFloat32('reshaped.weight')).toHaveLength(1024);
  });

  it('resolves symlinks for realPath and honours general.alignment', () => {
    const link = path.join(tmp, 'link.gguf');
    symlinkSync(goodPath, link);
    expect(new GgufFile(link).realPath).toBe(path.resolve(goodPath));
    const f64 = new GgufFile(fileOf(encodeGguf({ ...input, alignment: 64 })));
    expect(f64.alignment).toBe(64);
    for (const t of f64.names()) expect(f64.info(t).offset % 64).toBe(0);
    expect(f64.readFloat32('double_blocks.0.img_attn.norm.query_norm.scale')).toEqual(norm);
  });

  it("reads a header of several MiB (a T5 tokenizer's vocabulary): values across its read chunks", () => {
    const tokens = Array.from({ length: 120_000 }, (_, i) => `▁t${i}`.repeat(1 + (i % 3)));
    const scores = Array.from({ length: 300_000 }, (_, i) => i / 4);
    const big = new GgufFile(
      fileOf(
        encodeGguf({
          metadata: { 'tokenizer.ggml.tokens': tokens, 'tokenizer.ggml.scores': scores, after: 'end' },
          tensors: input.tensors,
        }),
      ),
    );
    expect(big.dataStart).toBeGreaterThan(2 * 1024 * 1024);
    // first mismatching index (a failing toEqual on 10^5 values would take minutes to diff)
    const firstDiff = (a: unknown, b: unknown[]) =>
      Array.isArray(a) && a.length === b.length ? a.findIndex((v, i) => v !== b[i]) : -2;
    expect(firstDiff(big.metadata['tokenizer.ggml.tokens'], tokens)).toBe(-1);
    expect(firstDiff(big.metadata['tokenizer.ggml.scores'], scores)).toBe(-1);
    expect(big.metadataTypes['tokenizer.ggml.scores']).toEqual({ type: 'array', elem: 'f32' });
    expect(big.metadata.after).toBe('end');
    expect(big.readFloat32('double_blocks.0.img_attn.norm.query_norm.scale')).toEqual(norm);
  });

  it('reads a version 2 file (same layout)', () => {
    expect(new GgufFile(patched((b) => b.writeUInt32LE(2, 4))).version).toBe(2);
  });
});

describe('GgufFile errors name the file, the tensor and what to do', () => {
  it('wrong magic, unsupported or big-endian version', () => {
    expect(message(fileOf(Buffer.from('{"__metadata__":{}}')))).toMatch(
      /^model.gguf: not a GGUF file \(it starts with "\{\\"__", not "GGUF"\); check that it is a \.gguf model/,
    );
    expect(message(fileOf(Buffer.from('GG')))).toMatch(/not a GGUF file \(it starts with 2 bytes/);
    expect(message(patched((b) => b.writeUInt32LE(1, 4)))).toMatch(
      /GGUF version 1 is not supported.*convert the model again/,
    );
    expect(message(patched((b) => b.writeUInt32LE(7, 4)))).toMatch(
      /GGUF version 7 is not supported \(scenewright reads versions 2 and 3\)/,
    );
    expect(message(patched((b) => b.writeUInt32BE(3, 4)))).toMatch(/big-endian/);
  });

  it('a file truncated anywhere: in the counts, the metadata, the tensor infos, the data', () => {
    const dataAt = infoAt(good, 'double_blocks.0.img_attn.qkv.weight');
    const cuts = [10, 30, 200, dataAt.nDims + 2, dataAt.offset + 4];
    for (const cut of cuts) {
      expect(message(fileOf(good.subarray(0, cut)))).toMatch(
        new RegExp(
          `^model.gguf: .*(runs past the end of the ${cut}-byte file|more than the rest of this ${cut}-byte file can hold).*download it again`,
        ),
      );
    }
    // header complete, data cut short: the last tensor does not fit
    const cut = good.length - 40;
    expect(message(fileOf(good.subarray(0, cut)))).toMatch(
      new RegExp(
        `^model.gguf: tensor reshaped8.weight \\(Q8_0, 136 bytes\\) ends at byte \\d+ but the file has only ${cut} bytes; the download is truncated: download it again`,
      ),
    );
  });

  it('an unsupported ggml type: unknown id, an IQ type, a removed one', () => {
    const at = infoAt(good, 'double_blocks.0.img_mlp.0.weight').type;
    const m99 = message(patched((b) => b.writeUInt32LE(99, at)));
    expect(m99).toMatch(
      /^model.gguf: tensor double_blocks.0.img_mlp.0.weight has ggml type 99 \(unknown to scenewright; from a newer ggml\?\), which scenewright cannot read \(supported: F32, F16, Q4_0, .*BF16\); re-quantize the model to Q8_0, Q4_0 or Q4_K .* or use the bf16\/fp8 safetensors file/,
    );
    expect(message(patched((b) => b.writeUInt32LE(16, at)))).toMatch(
      /has ggml type 16 \(IQ2_XXS\), which scenewright cannot read/,
    );
    expect(message(patched((b) => b.writeUInt32LE(20, at)))).toMatch(/ggml type 20 \(IQ4_NL\)/);
    expect(message(patched((b) => b.writeUInt32LE(34, at)))).toMatch(/ggml type 34 \(TQ1_0\)/);
  });

  it('misaligned, overlapping and out-of-range tensor data', () => {
    const second = infoAt(good, 'double_blocks.0.img_mlp.0.weight').offset;
    expect(message(patched((b) => b.writeBigUInt64LE(8n, second)))).toMatch(
      /tensor double_blocks.0.img_mlp.0.weight: its data offset 8 is not a multiple of the file's alignment 32/,
    );
    expect(message(patched((b) => b.writeBigUInt64LE(64n, second)))).toMatch(
      /tensors double_blocks.0.img_attn.qkv.weight \(bytes \d+\.\.\d+\) and double_blocks.0.img_mlp.0.weight \(from byte \d+\) overlap/,
    );
    expect(message(patched((b) => b.writeBigUInt64LE(2n ** 60n, second)))).toMatch(
      /the data offset of tensor double_blocks.0.img_mlp.0.weight is \d+, more than/,
    );
  });

  it("a shape that disagrees with the type's blocks or with its orig_shape", () => {
    const ne0 = infoAt(good, 'double_blocks.0.img_attn.qkv.weight').ne;
    expect(message(patched((b) => b.writeBigUInt64LE(48n, ne0)))).toMatch(
      /tensor double_blocks.0.img_attn.qkv.weight: its rows of 48 values are not whole Q8_0 blocks of 32/,
    );
    const bad = encodeGguf({
      ...input,
      metadata: { ...input.metadata, 'comfy.gguf.orig_shape.txt_in.weight': [3, 16] },
    });
    expect(message(fileOf(bad))).toMatch(
      /tensor txt_in.weight holds 64 values but its comfy.gguf.orig_shape.txt_in.weight is \[3, 16\]/,
    );
    const notInts = encodeGguf({
      ...input,
      metadata: { ...input.metadata, 'comfy.gguf.orig_shape.txt_in.weight': 'oops' },
    });
    expect(message(fileOf(notInts))).toMatch(/comfy.gguf.orig_shape.txt_in.weight must be an array of integers/);
    const fiveD = encodeGguf({
      tensors: [{ name: 'conv3d.weight', format: 'F32', shape: [1, 1, 1, 2, 2], data: new Uint8Array(16) }],
    });
    expect(message(fileOf(fiveD))).toMatch(/tensor conv3d.weight has 5 dimensions; GGUF \(ggml\) allows at most 4/);
  });

  it('duplicate names and keys, absurd counts, a bad alignment', () => {
    const t = input.tensors[2]!;
    expect(message(fileOf(encodeGguf({ tensors: [t, t] })))).toMatch(
      /tensor double_blocks.0.img_attn.norm.query_norm.scale appears twice/,
    );
    expect(message(patched((b) => b.writeBigUInt64LE(2n ** 40n, 8)))).toMatch(
      /the tensor count is 1099511627776, more than the rest of this \d+-byte file can hold/,
    );
    expect(message(patched((b) => b.writeBigUInt64LE(2n ** 62n, 16)))).toMatch(/the metadata count is \d+, more than/);
    // an array claiming 2^40 strings
    const arr = good.indexOf(Buffer.from('test.strings')) + 'test.strings'.length + 8;
    expect(message(patched((b) => b.writeBigUInt64LE(2n ** 40n, arr)))).toMatch(
      /the length of metadata array test.strings is 1099511627776, more than/,
    );
    // two keys of one length, the second renamed to the first
    const twoKeys = Buffer.from(encodeGguf({ metadata: { aaaa: 1, bbbb: 2 }, tensors: [] }));
    twoKeys.write('aaaa', twoKeys.indexOf('bbbb'), 'latin1');
    expect(message(fileOf(twoKeys))).toMatch(/metadata key aaaa appears twice/);
    const align = encodeGguf({ metadata: { 'general.alignment': { type: 'u32', value: 48 } }, tensors: [] });
    expect(message(fileOf(align))).toMatch(/general.alignment is 48 \(u32\); GGUF requires a u32 power of two/);
  });

  it('a missing file', () => {
    expect(() => new GgufFile(path.join(tmp, 'missing.gguf'), 'missing.gguf')).toThrow(
      /^missing.gguf: cannot open weights file \(ENOENT\)/,
    );
  });

  it('writeGguf writes what encodeGguf encodes', () => {
    const p = path.join(tmp, 'w.gguf');
    writeGguf(p, input);
    expect(readFileSync(p)).toEqual(good);
  });
});

describe('T5 encoder names (llama.cpp GGUF ↔ transformers)', () => {
  it("maps llama.cpp's T5 encoder names", () => {
    expect(t5GgufName('token_embd.weight')).toBe('shared.weight');
    expect(t5GgufName('enc.output_norm.weight')).toBe('encoder.final_layer_norm.weight');
    expect(t5GgufName('enc.blk.0.attn_rel_b.weight')).toBe(
      'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
    );
    expect(t5GgufName('enc.blk.23.attn_o.weight')).toBe('encoder.block.23.layer.0.SelfAttention.o.weight');
    expect(t5GgufName('enc.blk.3.ffn_gate.weight')).toBe('encoder.block.3.layer.1.DenseReluDense.wi_0.weight');
    expect(t5GgufName('enc.blk.3.ffn_up.weight')).toBe('encoder.block.3.layer.1.DenseReluDense.wi_1.weight');
    expect(t5GgufName('enc.blk.3.ffn_up.weight', { gated: false })).toBe(
      'encoder.block.3.layer.1.DenseReluDense.wi.weight',
    );
    expect(t5GgufName('enc.blk.3.ffn_norm.weight')).toBe('encoder.block.3.layer.1.layer_norm.weight');
    expect(t5GgufName('dec.blk.0.attn_q.weight')).toBeUndefined();
    expect(t5GgufName('output.weight')).toBeUndefined();
    expect(t5GgufName('enc.blk.0.attn_qkv.weight')).toBeUndefined();
  });

  it.each([true, false])('every name t5EncoderShapes expects round-trips (gated %s)', (gated) => {
    const cfg = {
      d_model: 8,
      num_heads: 2,
      d_kv: 4,
      d_ff: 16,
      vocab_size: 10,
      num_layers: 2,
      relative_attention_num_buckets: 4,
      is_gated_act: gated,
    };
    const names = [...t5EncoderShapes(cfg, 'config.json').shapes.keys()];
    expect(names).toContain('encoder.block.1.layer.1.DenseReluDense.wo.weight');
    for (const hf of names) {
      const g = t5HfToGgufName(hf);
      expect(g, hf).toMatch(
        /^(token_embd|enc\.output_norm|enc\.blk\.\d+\.(attn_[qkvo]|attn_rel_b|attn_norm|ffn_(gate|up|down|norm)))\.weight$/,
      );
      expect(t5GgufName(g!, { gated })).toBe(hf);
    }
    expect(t5HfToGgufName('encoder.embed_tokens.weight')).toBe('token_embd.weight');
  });
});
