import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  float32ToBf16Array,
  float32ToF16Array,
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from '../../src/engine/weights/dtype.ts';
import { openSafetensorsWeights } from '../../src/engine/weights/named-weights.ts';
import {
  encodeSafetensors,
  readSafetensors,
  SafetensorsFile,
  WeightsError,
  writeSafetensors,
} from '../../src/engine/weights/safetensors.ts';
import { concatRows, sliceRows, sourceToFloat32 } from '../../src/engine/weights/tensor-source.ts';
import { fixture } from '../support/fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string) => path.join(tmp, name);

/** A safetensors file with a hand-written header (for layouts our writer would not produce). */
function rawFile(name: string, header: unknown, data: Buffer): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file(name), Buffer.concat([len, json, data]));
  return file(name);
}

describe('safetensors reader and writer', () => {
  it('round-trips F32, F16, BF16 and I64 tensors with metadata; header padded to 8 bytes', () => {
    const vals = [0, 1, -2.5, 3.140625, 65504, 1e-3];
    const p = file('rt.safetensors');
    writeSafetensors(
      p,
      {
        a: { dtype: 'float32', shape: [2, 3], data: Float32Array.from(vals) },
        h: { dtype: 'float16', shape: [6], data: float32ToF16Array(vals) },
        b: { dtype: 'bfloat16', shape: [3, 2], data: float32ToBf16Array(vals) },
        ids: { dtype: 'int64', shape: [2], data: BigInt64Array.from([7n, -1n]) },
      },
      { format: 'pt' },
    );
    const headerLen = Number(readFileSync(p).readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const f = new SafetensorsFile(p);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(f.names()).toEqual(['a', 'h', 'b', 'ids']);
    expect(f.info('b')).toMatchObject({ dtype: 'bfloat16', shape: [3, 2] });
    expect(Array.from(f.readFloat32('a'))).toEqual(vals.map(Math.fround));
    expect(Array.from(f.readFloat32('h'))).toEqual(vals.map((v) => f16BitsToF32(f32ToF16Bits(v))));
    expect(Array.from(f.readFloat32('b'))).toEqual(vals.map((v) => bf16BitsToF32(f32ToBf16Bits(v))));
    expect(Array.from(f.read('ids').data as BigInt64Array)).toEqual([7n, -1n]);
    // External references point at the exact bytes: reading through them gives the same values.
    const src = f.source('b');
    expect(src.external).toEqual({ file: f.realPath, offset: 8 + headerLen + f.info('b').begin, length: 12 });
    expect(sourceToFloat32(src)).toEqual(f.readFloat32('b'));
    expect(readSafetensors(p).tensors.ids!.shape).toEqual([2]);
  });

  it('uses data_offsets rather than header order', () => {
    const data = Buffer.from(Float32Array.from([1, 2, 3, 4]).buffer);
    const p = rawFile(
      'order.safetensors',
      {
        second: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        first: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      },
      data,
    );
    const f = new SafetensorsFile(p);
    expect(Array.from(f.readFloat32('first'))).toEqual([1, 2]);
    expect(Array.from(f.readFloat32('second'))).toEqual([3, 4]);
  });

  it('rounds float32 to bf16 and f16 to nearest even', () => {
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // halfway → even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16Bits(70000)).toBe(0x7c00); // overflow → +Inf
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
  });

  it('slices and concatenates rows without reading data', () => {
    const p = file('rows.safetensors');
    writeSafetensors(p, {
      m: { dtype: 'bfloat16', shape: [4, 2], data: float32ToBf16Array([1, 2, 3, 4, 5, 6, 7, 8]) },
    });
    const src = new SafetensorsFile(p).source('m');
    const mid = sliceRows(src, 1, 2);
    expect(mid.shape).toEqual([2, 2]);
    expect(mid.external!.offset).toBe(src.external!.offset + 4);
    expect(Array.from(sourceToFloat32(mid))).toEqual([3, 4, 5, 6]);
    expect(Array.from(sourceToFloat32(concatRows([sliceRows(src, 3, 1), sliceRows(src, 0, 1)])))).toEqual([7, 8, 1, 2]);
  });
});

describe('safetensors errors name the file and the problem', () => {
  it('a file shorter than the 8-byte length prefix', () => {
    writeFileSync(file('tiny.safetensors'), Buffer.from([1, 2, 3]));
    expect(() => new SafetensorsFile(file('tiny.safetensors'), 'transformer/x.safetensors')).toThrow(
      /transformer\/x\.safetensors: truncated safetensors file \(3 bytes/,
    );
  });

  it('a truncated header (length beyond the end of the file)', () => {
    const real = readFileSync(fixture('tiny-flux-dev', 'transformer', 'diffusion_pytorch_model.safetensors'));
    writeFileSync(file('cut.safetensors'), real.subarray(0, 200));
    expect(() => new SafetensorsFile(file('cut.safetensors'), 'cut.safetensors')).toThrow(WeightsError);
    expect(() => new SafetensorsFile(file('cut.safetensors'), 'cut.safetensors')).toThrow(
      /cut\.safetensors: safetensors header length \d+ runs past the end of the 200-byte file/,
    );
  });

  it('truncated tensor data names the tensor', () => {
    const real = readFileSync(fixture('tiny-flux-dev', 'transformer', 'diffusion_pytorch_model.safetensors'));
    writeFileSync(file('short.safetensors'), real.subarray(0, real.length - 100));
    expect(() => new SafetensorsFile(file('short.safetensors'))).toThrow(
      /tensor x_embedder\.weight ends at byte \d+ but the file has only/,
    );
  });

  it('an unknown dtype, a shape that disagrees with the offsets, and a header that is not JSON', () => {
    const p1 = rawFile(
      'f8.safetensors',
      { w: { dtype: 'F8_E5M2', shape: [4], data_offsets: [0, 4] } },
      Buffer.alloc(4),
    );
    expect(() => new SafetensorsFile(p1)).toThrow(/tensor w has dtype F8_E5M2, which scenewright cannot read.*e4m3fn/);
    const p2 = rawFile('span.safetensors', { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, Buffer.alloc(8));
    expect(() => new SafetensorsFile(p2)).toThrow(
      /tensor w: data_offsets span 8 bytes but shape \[3\] of F32 needs 12/,
    );
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    writeFileSync(file('json.safetensors'), Buffer.concat([len, Buffer.from('{no}')]));
    expect(() => new SafetensorsFile(file('json.safetensors'))).toThrow(/header is not valid JSON/);
  });

  it('encodes only consistent tensors', () => {
    expect(() => encodeSafetensors({ x: { dtype: 'float32', shape: [3], data: new Float32Array(2) } })).toThrow(
      /8 bytes of data for shape \[3\]/,
    );
  });
});

describe('sharded weights', () => {
  function shard(dir: string) {
    const src = new SafetensorsFile(fixture('tiny-flux-dev', 'transformer', 'diffusion_pytorch_model.safetensors'));
    const names = src.names();
    const half = Math.ceil(names.length / 2);
    const parts = [names.slice(0, half), names.slice(half)];
    const map: Record<string, string> = {};
    parts.forEach((ns, i) => {
      const shardName = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(path.join(dir, shardName), Object.fromEntries(ns.map((n) => [n, src.read(n)])));
      for (const n of ns) map[n] = shardName;
    });
    writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
    return { src, map };
  }

  it('reads tensors through the index from the right shard', () => {
    const dir = mkdtempSync(path.join(tmp, 'shards-'));
    const { src, map } = shard(dir);
    const w = openSafetensorsWeights(dir, 'model', 'text_encoder');
    expect(w.names().sort()).toEqual(src.names().sort());
    const first = Object.keys(map).find((n) => map[n]!.startsWith('model-00001'))!;
    const second = Object.keys(map).find((n) => map[n]!.startsWith('model-00002'))!;
    expect(w.info(second).file).toBe('text_encoder/model-00002-of-00002.safetensors');
    expect(w.readFloat32(first)).toEqual(src.readFloat32(first));
    expect(w.readFloat32(second)).toEqual(src.readFloat32(second));
  });

  it('a missing shard is named with a tensor it should hold', () => {
    const dir = mkdtempSync(path.join(tmp, 'shards-'));
    shard(dir);
    rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
    expect(() => openSafetensorsWeights(dir, 'model', 'text_encoder_2')).toThrow(
      /text_encoder_2\/model\.safetensors\.index\.json lists shard model-00002-of-00002\.safetensors \(holding e\.g\. tensor [\w.]+\), but text_encoder_2\/model-00002-of-00002\.safetensors is missing/,
    );
  });

  it('no weights at all', () => {
    const dir = mkdtempSync(path.join(tmp, 'empty-'));
    expect(() => openSafetensorsWeights(dir, 'model', 'text_encoder')).toThrow(
      /text_encoder\/: neither model\.safetensors nor model\.safetensors\.index\.json found/,
    );
  });
});
