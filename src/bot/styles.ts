/**
 * Styles as Discord shows them: autocomplete choices for the `style` option, the /styles list, and the line that
 * says which styles a picture was painted with.
 */
import type { StyleSummary } from '../engine/lora/catalog.ts';
import type { Scene, StyleRef } from '../scene/schema.ts';
import { clip, quote } from './text.ts';

/** User-supplied text safe inside markdown, without quote()'s quotation marks. */
function md(text: string, max: number): string {
  return quote(text, max).slice(1, -1);
}

/** Discord's limits on autocomplete answers: 25 choices, each name at most 100 characters. */
export const MAX_CHOICES = 25;
const CHOICE_NAME_MAX = 100;

/** "watercolor — wcstyle, paint splash · flux-1-dev", within Discord's 100 characters (the name always whole). */
export function choiceName(s: StyleSummary): string {
  const extra = [s.meta.triggerWords.join(', '), s.meta.baseModel].filter(Boolean).join(' · ');
  const name = clip(s.name, CHOICE_NAME_MAX);
  if (!extra || name.length + 3 >= CHOICE_NAME_MAX) return name;
  return `${name} — ${clip(extra, CHOICE_NAME_MAX - name.length - 3)}`;
}

/**
 * The styles matching what the user has typed so far: names that start with it first, then names, trigger words
 * or base models that contain it; at most 25. The value is the style's name (what the command receives).
 */
export function styleChoices(styles: StyleSummary[], typed: string): { name: string; value: string }[] {
  const q = typed.trim().toLowerCase();
  const rank = (s: StyleSummary): number => {
    if (!q) return 0;
    const name = s.name.toLowerCase();
    if (name.startsWith(q)) return 0;
    if (name.includes(q)) return 1;
    const words = [...s.meta.triggerWords, s.meta.baseModel ?? '', s.meta.title ?? ''].join(' ').toLowerCase();
    return words.includes(q) ? 2 : -1;
  };
  return styles
    .map((s) => ({ s, r: rank(s) }))
    .filter((x) => x.r >= 0)
    .sort((a, b) => a.r - b.r || a.s.name.localeCompare(b.s.name))
    .slice(0, MAX_CHOICES)
    .map(({ s }) => ({ name: choiceName(s), value: clip(s.name, CHOICE_NAME_MAX) }));
}

/** Styles per /styles page (Discord messages hold 2000 characters; a line is at most about 150). */
export const STYLES_PER_PAGE = 10;

/** One page of /styles: name, base model, trigger words, and how to use it. */
export function stylesPage(styles: StyleSummary[], page: number): { text: string; pages: number } {
  const pages = Math.max(1, Math.ceil(styles.length / STYLES_PER_PAGE));
  const p = Math.min(Math.max(page, 1), pages);
  if (!styles.length)
    return {
      text: 'This bot has no styles yet: its operator can put FLUX LoRA `.safetensors` files in its LORA_DIR folder.',
      pages,
    };
  const lines = [
    `🎨 **Styles** (${styles.length})${pages > 1 ? `, page ${p} of ${pages}` : ''}: use one with \`/imagine style:\`, or in \`/layout\` as \`a cat @ 0 20 50 80 <name:0.8>\`, or reply “make the cat a <name>”.`,
  ];
  for (const s of styles.slice((p - 1) * STYLES_PER_PAGE, p * STYLES_PER_PAGE)) {
    const facts = [s.meta.baseModel ? `for ${md(s.meta.baseModel, 40)}` : undefined];
    if (s.meta.triggerWords.length) facts.push(`trigger words: ${md(s.meta.triggerWords.join(', '), 80)}`);
    const about = s.meta.description ?? s.meta.title;
    if (about && about !== s.name) facts.push(md(about, 80));
    const shown = facts.filter(Boolean);
    lines.push(`• **${md(s.name, 60)}**${shown.length ? ` — ${shown.join(' · ')}` : ''}`);
  }
  if (pages > p) lines.push(`-# More: \`/styles page:${p + 1}\``);
  return { text: lines.join('\n'), pages };
}

function scaleText(s: StyleRef): string {
  const name = md(s.name, 60);
  return s.scale === 1 ? name : `${name} ×${Number(s.scale.toFixed(2))}`;
}

/** "🎨 watercolor ×0.8 (whole picture) · ink on cat": the styles a scene is painted with; undefined without any. */
export function stylesLine(scene: Scene): string | undefined {
  const parts = (scene.loras ?? []).map((s) => `${scaleText(s)} (whole picture)`);
  for (const r of scene.regions) for (const s of r.loras ?? []) parts.push(`${scaleText(s)} on ${md(r.label, 40)}`);
  return parts.length ? `🎨 Styles: ${parts.join(' · ')}` : undefined;
}
