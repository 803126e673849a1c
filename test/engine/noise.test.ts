import { describe, expect, it } from 'vitest';
import { GaussianNoise, gaussian, philox4x32 } from '../../src/engine/noise.ts';
import { latentGeometry, latentImageIds, packLatents, textIds, unpackLatents } from '../../src/engine/latents.ts';
import { readSafetensors } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

const hex = (a: Uint32Array): string[] => Array.from(a, (x) => x.toString(16).padStart(8, '0'));

describe('Philox4x32-10', () => {
  // Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32 with 10 rounds).
  it.each([
    [
      [0, 0, 0, 0],
      [0, 0],
      ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8'],
    ],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      ['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd'],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      ['d16cfe09', '94fdcceb', '5001e420', '24126ea1'],
    ],
  ])('counter %j key %j', (counter, key, expected) => {
    expect(hex(philox4x32(counter, key))).toEqual(expected);
  });
});

describe('seeded Gaussian noise (the contract in src/engine/noise.ts)', () => {
  it('pins the first values: these numbers ARE the contract; a change here changes every seeded image', () => {
    expect(Array.from(gaussian(0, [6]))).toEqual([
      -0.12151797860860825, -1.3500326871871948, -0.08187420666217804, -0.222709059715271, 1.7764242887496948,
      2.173520803451538,
    ]);
    const latent = gaussian(42, [1, 16, 128, 128]);
    expect(Array.from(latent.subarray(0, 6))).toEqual([
      0.8864974975585938, 0.4393560588359833, -0.15660962462425232, -0.013718678615987301, -0.49410051107406616,
      -0.37216687202453613,
    ]);
    expect(latent[262143]).toBe(0.8126586079597473);
    expect(Array.from(gaussian(2n ** 64n - 1n, [5]))).toEqual([
      -0.9125069379806519, -0.8798009753227234, -1.6136175394058228, -1.4038344621658325, 1.6479671001434326,
    ]);
  });

  it('is deterministic and depends on the seed', () => {
    expect(gaussian(7, [2, 3, 4])).toEqual(gaussian(7, [2, 3, 4]));
    expect(gaussian(7, [24])).toEqual(gaussian(7, [2, 3, 4]));
    expect(gaussian(8, [24])).not.toEqual(gaussian(7, [24]));
    // A number seed and the same bigint seed are one key; seeds above 2^32 use the high key word.
    expect(gaussian(2 ** 40 + 5, [4])).toEqual(gaussian(2n ** 40n + 5n, [4]));
    expect(gaussian(2 ** 32 + 5, [4])).not.toEqual(gaussian(5, [4]));
  });

  it('a generator hands out consecutive blocks; an odd draw wastes its last sine', () => {
    const g = new GaussianNoise(1234);
    const first = g.next([3]);
    const second = g.next([4]);
    expect(g.blocksUsed).toBe(4);
    const all = gaussian(1234, [8]);
    expect(Array.from(first)).toEqual(Array.from(all.subarray(0, 3)));
    expect(Array.from(second)).toEqual(Array.from(all.subarray(4, 8)));
    expect(Array.from(second)).toEqual([
      0.4874565005302429, -1.5942409038543701, -0.7821327447891235, 0.26259008049964905,
    ]);
  });

  it('equals Box–Muller computed with Math.log/cos/sin to float32 rounding (own series are accurate)', () => {
    const seed = 99;
    const values = gaussian(seed, [2000]);
    const words = new Uint32Array(4);
    let worst = 0;
    for (let j = 0; j < 1000; j++) {
      philox4x32([j, 0, 0, 0], [seed, 0], words);
      const u1 = (words[0]! * 2 ** 20 + (words[1]! >>> 12) + 0.5) / 2 ** 52;
      const u2 = (words[2]! * 2 ** 20 + (words[3]! >>> 12)) / 2 ** 52;
      const r = Math.sqrt(-2 * Math.log(u1));
      worst = Math.max(
        worst,
        Math.abs(values[2 * j]! - r * Math.cos(2 * Math.PI * u2)),
        Math.abs(values[2 * j + 1]! - r * Math.sin(2 * Math.PI * u2)),
      );
    }
    // float32 rounding of |z| < 8 is at most 2^-21 ≈ 4.8e-7.
    expect(worst).toBeLessThan(5e-7);
  });

  it('has the moments of N(0, 1)', () => {
    const x = gaussian(3, [1, 16, 128, 128]);
    const n = x.length;
    let mean = 0;
    for (const v of x) mean += v;
    mean /= n;
    let m2 = 0;
    let m4 = 0;
    let beyond2 = 0;
    for (const v of x) {
      m2 += (v - mean) ** 2;
      m4 += (v - mean) ** 4;
      if (Math.abs(v) > 2) beyond2++;
    }
    m2 /= n;
    m4 /= n;
    // n = 262144: standard errors 0.002 (mean), 0.003 (variance), 0.01 (kurtosis); bounds are ~5σ.
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(m2 - 1)).toBeLessThan(0.015);
    expect(Math.abs(m4 / (m2 * m2) - 3)).toBeLessThan(0.05);
    expect(beyond2 / n).toBeGreaterThan(0.0435);
    expect(beyond2 / n).toBeLessThan(0.0475); // P(|z| > 2) = 0.0455
  });

  it('rejects seeds it cannot represent', () => {
    expect(() => gaussian(-1, [1])).toThrow(/seed must be an integer/);
    expect(() => gaussian(1.5, [1])).toThrow(/seed must be an integer/);
    expect(() => gaussian(2n ** 64n, [1])).toThrow(/seed must be an integer/);
  });
});

describe('latent packing (RAG-SPEC §1.2, §10.3)', () => {
  it('puts X[0,3,5,10] of a 1024² latent at token 133, channel 14', () => {
    const g = latentGeometry(1024, 1024);
    expect(g).toMatchObject({ height: 128, width: 128, rows: 64, cols: 64, tokens: 4096, packedChannels: 64 });
    const x = new Float32Array(16 * 128 * 128);
    x[(3 * 128 + 5) * 128 + 10] = 1;
    const p = packLatents(x, 1, 16, 128, 128);
    expect(p.indexOf(1)).toBe(133 * 64 + 14);
  });

  it('768×1536 geometry', () => {
    expect(latentGeometry(1536, 768)).toMatchObject({ height: 96, width: 192, rows: 48, cols: 96, tokens: 4608 });
    expect(() => latentGeometry(1000, 1024)).toThrow(/multiple of 16/);
  });

  it('matches FluxPipeline._pack_latents and _prepare_latent_image_ids on the golden pipeline inputs', () => {
    const g = readSafetensors(fixture('golden', 'pipeline_dev.safetensors')).tensors;
    const f = (n: string) => g[n]!.data as Float32Array;
    expect(packLatents(f('latents_init_unpacked'), 1, 16, 16, 16)).toEqual(f('latents_init'));
    expect(unpackLatents(f('final_latents'), 1, 16, 16, 16)).toEqual(f('final_latents_unpacked'));
    expect(latentImageIds(8, 8)).toEqual(f('latent_image_ids'));
  });

  it('unpack ∘ pack = identity and pack ∘ unpack = identity (batch 2, non-square)', () => {
    const x = gaussian(5, [2, 16, 6, 10]);
    const p = packLatents(x, 2, 16, 6, 10);
    expect(p).not.toEqual(x);
    expect(unpackLatents(p, 2, 16, 6, 10)).toEqual(x);
    expect(packLatents(unpackLatents(x, 2, 16, 6, 10), 2, 16, 6, 10)).toEqual(x);
    expect(() => packLatents(x, 1, 16, 6, 10)).toThrow(/do not make/);
  });

  it('image ids are (0, row, col) row-major; text ids are zeros', () => {
    expect(Array.from(latentImageIds(2, 3))).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 2]);
    expect(Array.from(textIds(2))).toEqual([0, 0, 0, 0, 0, 0]);
  });
});
