// A stand-in for the engine at the Painter boundary, for testing the worker host and the bot before the
// FLUX pipeline exists: it really paints (flat boxes from the Scene, with sharp), takes a configurable time
// per step, reports progress with previews and honours the abort signal (unless told not to).
import sharp from 'sharp';
import type { PaintRequest, Painter, PainterOptions } from '../../src/worker/painter.ts';

function colour(label: string): { r: number; g: number; b: number } {
  let h = 2166136261;
  for (const c of label) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return { r: h & 255, g: (h >> 8) & 255, b: (h >> 16) & 255 };
}

async function draw(req: PaintRequest, scale = 1): Promise<Buffer> {
  const { scene } = req.params;
  const W = Math.max(8, Math.round(scene.width * scale));
  const H = Math.max(8, Math.round(scene.height * scale));
  const boxes = await Promise.all(
    scene.regions.map(async (r) => ({
      input: await sharp({ create: { width: Math.max(1, Math.round(r.box.w * W)), height: Math.max(1, Math.round(r.box.h * H)), channels: 3, background: colour(r.label) } }).png().toBuffer(),
      left: Math.round(r.box.x * W),
      top: Math.round(r.box.y * H),
    })),
  );
  const seedShade = req.params.seed % 200;
  return sharp({ create: { width: W, height: H, channels: 3, background: { r: seedShade, g: seedShade, b: seedShade } } })
    .composite(boxes)
    .png()
    .toBuffer();
}

export async function createPainter(options: PainterOptions): Promise<Painter> {
  const extra = options.extra ?? {};
  if (typeof extra.failInit === 'string') throw new Error(extra.failInit);
  const stepMs = Number(extra.stepMs ?? 10);
  const ignoreAbort = extra.ignoreAbort === true;
  return {
    info: { id: 'flat-test-painter', version: '1' },
    async paint(req, { onProgress, signal }) {
      if (typeof extra.failOnPrompt === 'string' && req.params.scene.prompt.includes(extra.failOnPrompt)) {
        throw new Error(`cannot paint "${extra.failOnPrompt}"`);
      }
      const total = req.params.steps;
      for (let step = 1; step <= total; step++) {
        await new Promise((r) => setTimeout(r, stepMs));
        if (signal.aborted && !ignoreAbort) throw new Error('aborted');
        onProgress(step, total, step === total || step % 2 === 0 ? await draw(req, 0.25) : undefined);
      }
      if (ignoreAbort) await new Promise((r) => setTimeout(r, 60_000));
      const png = await draw(req);
      return { png, artifacts: { 'scene.json': Buffer.from(JSON.stringify(req.params.scene)) } };
    },
  };
}
