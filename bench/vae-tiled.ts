/**
 * Peak RSS of one VAE decode at 1024² on the `bench` preset, tiled or not (each in its own process):
 *   node --import tsx bench/vae-tiled.ts tiled|whole
 */
import { benchCheckpoint, peakRssMiB } from './support.ts';
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { VaeCodec } from '../src/engine/graphs/vae-codec.ts';
import { decodeVae } from '../src/engine/graphs/vae-tiled.ts';
import { gaussian } from '../src/engine/noise.ts';

const mode = process.argv[2] === 'whole' ? 'never' : 'always';
const vae = new VaeCodec(loadCheckpoint(benchCheckpoint('dev')).component('vae'), {
  executionProvider: 'cpu',
  threads: 2,
});
await vae.prepareDecoder();
const before = peakRssMiB();
const t0 = performance.now();
await decodeVae(vae, { data: gaussian(17, [1, 16, 128, 128]), shape: [1, 16, 128, 128] }, { tiling: mode });
console.log(
  `${process.argv[2] ?? 'tiled'}: decode ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${peakRssMiB().toFixed(0)} MiB (${before.toFixed(0)} MiB before the decode)`,
);
