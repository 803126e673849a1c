// The engine's painter, held back until a file appears: plays the minutes a real FLUX checkpoint takes to
// load, so a test can act while the painter is warming up. Everything after the gate is the real engine.
import { existsSync } from 'node:fs';
import { createPainter as enginePainter } from '../../src/engine/painter.ts';
import type { Painter, PainterOptions } from '../../src/worker/painter.ts';

export async function createPainter(options: PainterOptions): Promise<Painter> {
  const gate = options.extra?.gate;
  while (typeof gate === 'string' && !existsSync(gate)) await new Promise((r) => setTimeout(r, 50));
  return enginePainter(options);
}
