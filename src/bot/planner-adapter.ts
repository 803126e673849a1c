import sharp from 'sharp';
import type { Config } from '../config/config.ts';
import { planEdit } from '../planner/editor.ts';
import { llmFromConfig } from '../planner/llm.ts';
import { planScene } from '../planner/plan.ts';
import type { Scene } from '../scene/schema.ts';
import type { BotPlanner } from './planning.ts';

// The bot's view of src/planner: the LLM planner and editor when an LLM is configured (each falls back to
// the offline rules on failure), the offline rules otherwise. Layout pictures come from
// `interimLayoutPicture` until the planner's renderLayout lands.

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
  const llm = llmFromConfig(config.llm);
  const name = (source: 'llm' | 'offline') => (source === 'llm' ? `llm:${config.llm.model}` : 'offline');
  return {
    async plan(text, o) {
      // Without an LLM, ask for the offline planner directly: its notes are for users, "no LLM configured" is not.
      const r = await planScene(text, { llm, offline: !llm, width: o.width, height: o.height, limits: { ...limits, maxRegions: o.maxRegions } });
      const notes = r.warnings.filter((w) => !/OPENAI_|LLM/.test(w));
      if (llm && r.source === 'offline') notes.unshift('the language model did not answer in time, so the simple offline planner (English only) made this layout');
      return { scene: r.scene, planner: name(r.source), note: notes.length ? notes.join('; ') : undefined };
    },
    async edit(scene, instruction, o) {
      const r = await planEdit(scene, instruction, { llm, offline: !llm, history: o.history, lastIds: o.lastIds, limits });
      return { edit: r.edit, planner: name(r.source) };
    },
    renderLayout: interimLayoutPicture,
  };
}
