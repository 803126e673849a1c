import sharp from 'sharp';
import type { Config } from '../config/config.ts';
import { editOffline } from '../planner/offline-edit.ts';
import { planOffline } from '../planner/offline.ts';
import type { Scene } from '../scene/schema.ts';
import type { BotPlanner } from './planning.ts';

// The bot's view of src/planner. For now: the offline planner and editor (the LLM planner and the layout
// renderer of src/planner plug in here when they land; until then layout pictures come from
// `interimLayoutPicture`, plain boxes and labels).

const COLOURS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324', '#469990', '#808000'];

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Boxes with their labels over a blank canvas or the image: what the planner's renderLayout will replace. */
export async function interimLayoutPicture(scene: Scene, image?: Buffer): Promise<Buffer> {
  const W = scene.width;
  const H = scene.height;
  const stroke = Math.max(2, Math.round(Math.min(W, H) / 170));
  const font = Math.max(12, Math.round(Math.min(W, H) / 28));
  const shapes = scene.regions.map((r, i) => {
    const c = COLOURS[i % COLOURS.length]!;
    const x = r.box.x * W;
    const y = r.box.y * H;
    const label = esc(`${r.id}: ${r.label}`.slice(0, 60));
    return `<rect x="${x}" y="${y}" width="${r.box.w * W}" height="${r.box.h * H}" fill="${c}" fill-opacity="0.12" stroke="${c}" stroke-width="${stroke}"/>` +
      `<text x="${x + stroke * 2}" y="${y + font + stroke}" font-family="DejaVu Sans, sans-serif" font-size="${font}" fill="${c}" stroke="#fff" stroke-width="${Math.max(1, font / 8)}" paint-order="stroke">${label}</text>`;
  });
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">${shapes.join('')}</svg>`);
  const base = image ? sharp(image).resize(W, H, { fit: 'fill' }) : sharp({ create: { width: W, height: H, channels: 3, background: '#f4f4f4' } });
  return base.composite([{ input: svg }]).png().toBuffer();
}

export async function createBotPlanner(config: Config): Promise<BotPlanner> {
  const limits = { maxRegions: config.limits.maxRegions, minSize: config.limits.minSize, maxSize: config.limits.maxSize };
  return {
    async plan(text, o) {
      const r = planOffline(text, { width: o.width, height: o.height, limits: { ...limits, maxRegions: o.maxRegions } });
      return { scene: r.scene, planner: r.source, note: r.warnings.length ? r.warnings.join('; ') : undefined };
    },
    async edit(scene, instruction) {
      const r = editOffline(scene, instruction, { limits });
      return { edit: r.edit, planner: r.source };
    },
    renderLayout: interimLayoutPicture,
  };
}
