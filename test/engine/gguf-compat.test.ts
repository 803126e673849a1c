import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeRows } from '../../src/engine/weights/gguf/blocks.ts';
import { GgufFile } from '../../src/engine/weights/gguf/file.ts';
import { toNBits } from '../../src/engine/weights/gguf/to-nbits.ts';
import { encodeRows } from '../../src/engine/weights/gguf/writer.ts';
import { dequantizeNBits } from '../../src/engine/weights/nbits.ts';

/**
 * A 800-byte file written by llama.cpp's own Python package (gguf-py 0.19.0: GGUFWriter, gguf.quants.quantize)
 * and the values its gguf.quants.dequantize gives, so the reader, the decoders and the legacy encoders are checked
 * against an implementation that is not ours. Made from x[r, j] = ((32r + j)·7 mod 64 − 31.5) / 8, shape [2, 32]:
 * tensors w.Q8_0, w.Q4_0, w.Q5_1 (that x), norm (F32 [1, −2, 0.5, 3]) and conv.weight (x as Q8_0 [1, 64] with
 * comfy.gguf.orig_shape [2, 1, 2, 16]); metadata general.architecture = "flux" and tokenizer.ggml.tokens.
 */
const FILE =
  'R0dVRgMAAAAFAAAAAAAAAAMAAAAAAAAAFAAAAAAAAABnZW5lcmFsLmFyY2hpdGVjdHVyZQgAAAAEAAAAAAAAAGZsdXghAAAAAAAAAGNvbWZ5Lm' +
  'dndWYub3JpZ19zaGFwZS5jb252LndlaWdodAkAAAAFAAAABAAAAAAAAAACAAAAAQAAAAIAAAAQAAAAFQAAAAAAAAB0b2tlbml6ZXIuZ2dtbC50' +
  'b2tlbnMJAAAACAAAAAIAAAAAAAAABQAAAAAAAAA8cGFkPgEAAAAAAAAAYQYAAAAAAAAAdy5ROF8wAgAAACAAAAAAAAAAAgAAAAAAAAAIAAAAAA' +
  'AAAAAAAAAGAAAAAAAAAHcuUTRfMAIAAAAgAAAAAAAAAAIAAAAAAAAAAgAAAGAAAAAAAAAABgAAAAAAAAB3LlE1XzECAAAAIAAAAAAAAAACAAAA' +
  'AAAAAAcAAACgAAAAAAAAAAQAAAAAAAAAbm9ybQEAAAAEAAAAAAAAAAAAAADgAAAAAAAAAAsAAAAAAAAAY29udi53ZWlnaHQCAAAAQAAAAAAAAA' +
  'ABAAAAAAAAAAgAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAPAngZ251vIOKkdjf5m10u4KJkNfe5WxzuoGIj5bd5GtyuavJwIfPFp3iabE4f4b' +
  'OFVzhaK/3foXNFFugZ672PYTME1qAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAOA3wOL0FTdZe4yuz+LzFTdZaqA3SGqMnr/R8gQmSGp8nb' +
  '/Q8gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAARNODD4MOHD4Cz9ypukdUITH+z5ipdkcSdM6DDHz548IDE+Dt/oeUITHCz9ytuodQAAAAA' +
  'AAAAAAAAAAAAAAAAAACAPwAAAMAAAAA/AABAQAAAAAAAAAAAAAAAAAAAAADwJ4GdudbyDipHY3+ZtdLuCiZDX3uVsc7qBiI+W3eRrcrmrycCHz' +
  'xad4mmxOH+GzhVc4Wiv936FzRRboGeu9j2EzBNagAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** gguf.quants.dequantize of each tensor, float32 little-endian. */
const DEQUANT: Record<'Q8_0' | 'Q4_0' | 'Q5_1', string> = {
  Q8_0:
    'AAR8wAB0RMAA5AzAALCmvwBA3r4AQN4+ALCmPwDkDEAAdERAAAR8QABkTMAA1BTAAJC2vwDgDr8AwJ4+ANCWPwD0BEAAhDxAABR0QABUVM' +
    'AAxBzAAHDGvwCgLr8AgD4+APCGPwAQ9j8AlDRAACRsQABEXMAAtCTAAFDWvwBgTr8A4HU9ADFuPwCC5j+A4SxAQJZkQECWZMCA4SzAAILm' +
    'vwAxbr8A4HW9AHVPPwAk1z/ARiNAQOdcQEBFbMCAkDTAgLf5v4B2hr8AaDi+ALkwPwDGxz/AlxtAgExTQED0c8CAPzzAwIoEwACsmb8ArJ' +
    'm+AP0RPwBouD/A6BNAgJ1LQA==',
  Q4_0:
    'AAB8wAAAPcAAAPy/AAC9vwAA/L4AAPw+AAC9PwAA/D8AAD1AAIBcQAAAPcAAgB3AAAC9vwAA/L4AAPw+AAB8PwAA/D8AAD1AAIBcQACAXM' +
    'AAgB3AAAC9vwAA/L4AAAAAAAB8PwAA/D8AAD1AAIBcQACAXMAAgB3AAAC9vwAAfL8AAAAAAAB0PwAA9D8AADdAAIBVQACAVcAAADfAAAD0' +
    'vwAAdL8AAAAAAAB0PwAA9D8AgBhAAIBVQAAAdMAAADfAAAD0vwAAdL8AAAAAAAD0PgAAtz8AgBhAAIBVQAAAdMAAADfAAAD0vwAAdL8AAP' +
    'S+AAD0PgAAtz8AgBhAAIBVQA==',
  Q5_1:
    'AAB8wAA0S8AAJArAALCyvwBAwr4AIMQ+ACizPwBgCkAAcEtAADx8QAA0S8AAaBrAALCyvwAwIr8AIMQ+AKCSPwBgCkAALDtAADx8QAB4W8' +
    'AAaBrAADjTvwAwIr8AAAQ+AKCSPwA49D8ALDtAAPhrQAB4W8AArCrAADjTvwBAY78AAMC7ACByPwDg8j8AHidAAAZkQADGZMAA3ifAAGD0' +
    'vwAgdb8AAMC7ADg1PwBs1D8AHidAAMxUQADGZMAAGDfAAGD0vwAgdb8AoHm+ADg1PwBs1D8A5BdAAMxUQAAAdMAAGDfAAGoJwAAEmb8AoH' +
    'm+AKDwPgD4tT8A5BdAAJJFQA==',
};

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-gguf-compat-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const f32 = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
const x = Float32Array.from({ length: 64 }, (_, i) => (((i * 7) % 64) - 31.5) / 8);

describe("GGUF written by llama.cpp's gguf-py", () => {
  const p = path.join(tmp, 'gguf-py.gguf');
  writeFileSync(p, Buffer.from(FILE, 'base64'));
  const f = new GgufFile(p, 'gguf-py.gguf');

  it('reads its header: metadata, names, shapes (orig_shape honoured), types', () => {
    expect(f.version).toBe(3);
    expect(f.metadata['general.architecture']).toBe('flux');
    expect(f.metadata['tokenizer.ggml.tokens']).toEqual(['<pad>', 'a']);
    expect(f.names()).toEqual(['w.Q8_0', 'w.Q4_0', 'w.Q5_1', 'norm', 'conv.weight']);
    expect(f.info('w.Q4_0')).toMatchObject({ shape: [2, 32], format: 'Q4_0', ne: [32, 2] });
    expect(f.info('conv.weight')).toMatchObject({ shape: [2, 1, 2, 16], format: 'Q8_0', ne: [64, 1] });
    expect(f.source('conv.weight').encoded).toMatchObject({ format: 'Q8_0', rowBytes: 34 });
    expect(Array.from(f.readFloat32('norm'))).toEqual([1, -2, 0.5, 3]);
  });

  it.each(['Q8_0', 'Q4_0', 'Q5_1'] as const)(
    "%s: our decoding and our MatMulNBits repack equal gguf-py's dequantize bit for bit",
    (format) => {
      const want = f32(DEQUANT[format]);
      const bytes = f.readBytes(`w.${format}`);
      expect(new Uint32Array(decodeRows(format, bytes, 2, 32).buffer)).toEqual(new Uint32Array(want.buffer));
      // Q5_1 is affine: the repack's single rounding may differ from d·q + m in the last bit
      const viaNBits = dequantizeNBits(toNBits(format, bytes, 2, 32));
      for (let i = 0; i < 64; i++) expect(Math.abs(viaNBits[i]! - want[i]!)).toBeLessThanOrEqual(2 ** -22 * 8); // |d·q| + |m| ≤ 8 here
    },
  );

  it.each(['Q8_0', 'Q4_0', 'Q5_1'] as const)("%s: our encoder writes the bytes gguf-py's quantize wrote", (format) => {
    expect(Buffer.from(encodeRows(format, x, 2, 32))).toEqual(Buffer.from(f.readBytes(`w.${format}`)));
  });
});
