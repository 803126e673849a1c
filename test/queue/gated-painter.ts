// The engine's painter, held back until a file appears: plays the minutes a real FLUX checkpoint takes to
// load, so a test can act while the painter is warming up. The gate sits where the weights start loading (after
// the model is announced); everything else is the real engine.
import { existsSync } from 'node:fs';
import { createPainter as enginePainter } from '../../src/worker/engine-painter.ts';
import type { Painter, PainterHooks, PainterOptions } from '../../src/worker/painter.ts';

export async function createPainter(options: PainterOptions, hooks: PainterHooks = {}): Promise<Painter> {
  const gate = options.extra?.gate;
  return enginePainter(options, {
    async onLoading(info) {
      await hooks.onLoading?.(info);
      while (typeof gate === 'string' && !existsSync(gate)) await new Promise((r) => setTimeout(r, 50));
    },
  });
}
