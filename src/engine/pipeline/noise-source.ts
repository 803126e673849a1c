import { UserError } from '../../config/errors.ts';
import { gaussian, GaussianNoise } from '../noise.ts';
import { toFloat32, type HostTensor } from '../weights/safetensors.ts';

/**
 * Where a run's initial noise comes from, in RAG's draw order (RAG-SPEC.md §1.7): the global latent, then each
 * hard-binding box in list order from the same stream, and the repaint box from its own seed. Shapes are the
 * unpacked NCHW latents [1, 16, 2·rows, 2·cols].
 */
export interface NoiseSource {
  global(shape: number[]): Float32Array;
  box(k: number, shape: number[]): Float32Array;
  repaint(shape: number[]): Float32Array;
}

/**
 * Our seeded generator (noise.ts): one stream for the global latent and the boxes, drawn in that order, and a
 * fresh one for the repaint box from Repainting_seed. Draws must be asked for in order (global, box 0, 1, …).
 */
export function seededNoise(seed: number, repaintSeed?: number): NoiseSource {
  const stream = new GaussianNoise(seed);
  let next = 0;
  return {
    global(shape) {
      if (next !== 0) throw new Error('seeded noise: the global latent must be drawn first');
      next = 1;
      return stream.next(shape);
    },
    box(k, shape) {
      if (next !== k + 1) throw new Error(`seeded noise: box ${k} drawn out of order`);
      next++;
      return stream.next(shape);
    },
    repaint(shape) {
      if (repaintSeed === undefined) throw new Error('seeded noise: no repaint seed given');
      return gaussian(repaintSeed, shape);
    },
  };
}

/**
 * Noise given as tensors `noise_draw_0 … noise_draw_n` in upstream's draw order (DESIGN.md §5 `debug rag`):
 * draw 0 the global latent, 1…K the K listed boxes, K+1 the repaint box. `boxCount` is the number of boxes in
 * the parameter lists (upstream draws their noise even when HB_replace is −1).
 */
export function explicitNoise(tensors: Record<string, HostTensor>, boxCount: number, where = '--inputs'): NoiseSource {
  const take = (i: number, shape: number[], what: string) => {
    const name = `noise_draw_${i}`;
    const t = tensors[name];
    if (!t)
      throw new UserError(
        `${where}: ${name} (${what}, shape [${shape.join(', ')}]) is missing; noise draws are global latent, each box in list order, then the repaint box`,
        2,
      );
    if (t.shape.join(',') !== shape.join(','))
      throw new UserError(
        `${where}: ${name} (${what}) has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
        2,
      );
    return toFloat32(t);
  };
  return {
    global: (shape) => take(0, shape, 'global latent'),
    box: (k, shape) => take(1 + k, shape, `hard-binding box ${k}`),
    repaint: (shape) => take(1 + boxCount, shape, 'repaint box'),
  };
}
