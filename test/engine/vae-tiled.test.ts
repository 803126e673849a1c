/**
 * The tiled VAE decode (graphs/vae-tiled.ts) against the untiled one, on the `bench` preset's VAE (a quarter of
 * FLUX's channels, the real block structure) at 1024², the size where the engine starts tiling.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchCheckpoint } from '../../bench/support.ts';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { VaeCodec, type Nchw } from '../../src/engine/graphs/vae-codec.ts';
import { gaussian } from '../../src/engine/noise.ts';
import { decodeActivationBytes, decodeTiled, tileStarts, usesTiles } from '../../src/engine/graphs/vae-tiled.ts';

const cpu = { executionProvider: 'cpu' as const, threads: 2 };
let vae: VaeCodec;
let latent: Nchw;

/**
 * The latent decoded: unit-variance Gaussian noise (the pipeline's starting latent; its final latents keep roughly
 * that scale), 128² for a 1024² image. An encoded picture is not used: this preset's VAE has random weights, and its
 * encoder turns a picture into a latent of large, image-wide gradients, where tiling's local group-norm statistics
 * differ most from the whole image's (measured: mean error 0.38 of |image| ≤ 6.2, i.e. 6 %).
 */
const LATENT: Nchw['shape'] = [1, 16, 128, 128];

beforeAll(async () => {
  vae = new VaeCodec(loadCheckpoint(benchCheckpoint('dev')).component('vae'), cpu);
  latent = { data: gaussian(17, LATENT), shape: LATENT };
}, 240_000);
afterAll(() => vae?.release());

describe('tiled VAE decode', () => {
  it('covers every latent pixel with tiles that overlap by at least the asked amount', () => {
    expect(tileStarts(128, 64, 16)).toEqual([0, 48, 64]);
    expect(tileStarts(64, 64, 16)).toEqual([0]);
    expect(tileStarts(200, 64, 16)).toEqual([0, 48, 96, 136]);
    for (const [n, t, o] of [
      [128, 64, 16],
      [200, 64, 16],
      [97, 32, 8],
    ] as const) {
      const s = tileStarts(n, t, o);
      expect(s.at(-1)! + t).toBe(n);
      for (let i = 1; i < s.length; i++) expect(s[i - 1]! + t - s[i]!).toBeGreaterThanOrEqual(o);
    }
  });

  it('is used from ≈ 720² on, or when the memory budget is short', () => {
    const at = (px: number): Nchw => ({ data: new Float32Array(0), shape: [1, 16, px / 8, px / 8] });
    expect(decodeActivationBytes(128, 128)).toBe(2 ** 31); // 1024²: ≈ 2 GB
    expect(usesTiles(at(512))).toBe(false);
    expect(usesTiles(at(1024))).toBe(true);
    expect(usesTiles(at(512), { budgetBytes: 256 * 2 ** 20 })).toBe(true);
    expect(usesTiles(at(1024), { tiling: 'never' })).toBe(false);
  });

  it('a latent no larger than one tile decodes exactly as untiled', async () => {
    const small = { data: latent.data.slice(0, 16 * 32 * 32), shape: [1, 16, 32, 32] as Nchw['shape'] };
    const a = await vae.decode(small);
    const b = await decodeTiled(vae, small);
    expect(b.shape).toEqual(a.shape);
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
  });

  it('at 1024² stays within the bound of the untiled decode', async () => {
    const whole = await vae.decode(latent);
    const tiled = await decodeTiled(vae, latent);
    expect(tiled.shape).toEqual(whole.shape);
    let max = 0;
    let sum = 0;
    let range = 0;
    for (let i = 0; i < whole.data.length; i++) {
      const d = Math.abs(tiled.data[i]! - whole.data[i]!);
      max = Math.max(max, d);
      sum += d;
      range = Math.max(range, Math.abs(whole.data[i]!));
    }
    const mean = sum / whole.data.length;
    process.stdout.write(
      `tiled vs untiled at 1024²: max ${max.toExponential(2)}, mean ${mean.toExponential(2)}, |image| ≤ ${range.toFixed(2)}\n`,
    );
    // Bound: mean |error| ≤ 1 % and max ≤ 10 % of the image's largest magnitude. Why: the tiles' mid-block attention
    // and group norms see 512² of context instead of 1024², so seams cannot be exact; the ramps make them smooth
    // rather than steps. Measured on this latent: max 0.14, mean 0.012, |image| ≤ 4.8.
    expect(mean).toBeLessThan(0.01 * range);
    expect(max).toBeLessThan(0.1 * range);
  }, 120_000);
});
