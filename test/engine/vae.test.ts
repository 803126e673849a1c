import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { runDebug } from '../../src/engine/debug/run.ts';
import { VaeCodec, type Nchw } from '../../src/engine/graphs/vae-codec.ts';
import { readSafetensors } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

// Tolerance 1e-5 absolute: fixtures/README.md §5 measured diffusers vs BFL at 2.0e-6 (decode, outputs up to
// 3.3) and 7.1e-7 (encode, up to 0.85), and expects a float32 port within ~1e-5. Measured here: decode
// 3.1e-6, encode latent 1.0e-6, raw mean 3.2e-6, logvar 2.5e-6.
const TOL = 1e-5;
const cpu = { executionProvider: 'cpu' as const, threads: 2 };
const golden = readSafetensors(fixture('golden', 'vae.safetensors')).tensors;
const t = (name: string): Nchw => ({
  data: golden[name]!.data as Float32Array,
  shape: golden[name]!.shape as Nchw['shape'],
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('VAE graphs vs diffusers AutoencoderKL and BFL AutoEncoder (golden vae.safetensors)', () => {
  const component = loadCheckpoint(fixture('tiny-flux-dev')).component('vae');
  const vae = new VaeCodec(component, cpu);
  afterAll(() => vae.release());

  it('reads FLUX scaling and shift from the config', () => {
    expect([vae.scalingFactor, vae.shiftFactor, vae.latentChannels]).toEqual([0.3611, 0.1159, 16]);
  });

  it('decode: the pipeline latent (before unscaling) → image, equal to both references', async () => {
    const image = await vae.decode(t('decode_latent'));
    expect(image.shape).toEqual([1, 3, 64, 64]);
    expect(maxAbsDiff(image.data, t('decode_out_diffusers').data)).toBeLessThan(TOL);
    expect(maxAbsDiff(image.data, t('decode_out_bfl').data)).toBeLessThan(TOL);
  });

  it('encode: image → (mean − shift)·scale, and the raw mean and clamped logvar', async () => {
    const out = await vae.encode(t('encode_image'));
    expect(out.latent.shape).toEqual([1, 16, 8, 8]);
    expect(maxAbsDiff(out.latent.data, t('encode_out_bfl').data)).toBeLessThan(TOL);
    expect(maxAbsDiff(out.mean.data, t('encode_mean_diffusers').data)).toBeLessThan(TOL);
    expect(maxAbsDiff(out.logvar.data, t('encode_logvar_diffusers').data)).toBeLessThan(TOL);
  });

  it('one decoder serves other sizes and batches (symbolic spatial dims)', async () => {
    const latent: Nchw = { data: new Float32Array(2 * 16 * 4 * 6).fill(0.1), shape: [2, 16, 4, 6] };
    const image = await vae.decode(latent);
    expect(image.shape).toEqual([2, 3, 32, 48]);
    expect(image.data.every(Number.isFinite)).toBe(true);
    // Identical latents in the batch give identical images.
    expect(maxAbsDiff(image.data.subarray(0, 3 * 32 * 48), image.data.subarray(3 * 32 * 48))).toBe(0);
  });

  it('rejects a latent with the wrong channel count', async () => {
    await expect(vae.decode({ data: new Float32Array(4 * 8 * 8), shape: [1, 4, 8, 8] })).rejects.toThrow(
      /expected \[B, 16, H, W\]/,
    );
  });

  it('debug vae-decode (input `latent`) and vae-encode (output `latent`) on the golden file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-vae-'));
    try {
      const out = path.join(dir, 'out.safetensors');
      const model = fixture('tiny-flux-dev');
      await runDebug(
        'vae-decode',
        { model, inputs: fixture('golden', 'vae.safetensors'), prefix: 'decode_', out },
        cpu,
        () => {},
      );
      expect(
        maxAbsDiff(readSafetensors(out).tensors.image!.data as Float32Array, t('decode_out_diffusers').data),
      ).toBeLessThan(TOL);
      await runDebug(
        'vae-encode',
        { model, inputs: fixture('golden', 'vae.safetensors'), prefix: 'encode_', out, intermediates: true },
        cpu,
        () => {},
      );
      const enc = readSafetensors(out).tensors;
      expect(Object.keys(enc).sort()).toEqual(['latent', 'logvar', 'mean']);
      expect(maxAbsDiff(enc.latent!.data as Float32Array, t('encode_out_bfl').data)).toBeLessThan(TOL);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
