// The engine's painter, writing down every request it is handed (one JSON line each, to `extra.record`), so a test
// can see exactly what reached the painter process: style paths resolved by the worker host, hashes checked.
import { appendFileSync } from 'node:fs';
import { createPainter as enginePainter } from '../../src/worker/engine-painter.ts';
import type { Painter, PainterHooks, PainterOptions } from '../../src/worker/painter.ts';

export async function createPainter(options: PainterOptions, hooks: PainterHooks = {}): Promise<Painter> {
  const record = options.extra?.record;
  const painter = await enginePainter(options, hooks);
  return {
    info: painter.info,
    async paint(request, ctx) {
      if (typeof record === 'string') appendFileSync(record, `${JSON.stringify(request)}\n`);
      return painter.paint(request, ctx);
    },
    close: () => painter.close?.() ?? Promise.resolve(),
  };
}
