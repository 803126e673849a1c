import { LORA_LIMITS } from '../rag/params.ts';
import type { Box, Region, StyleRef } from '../scene/schema.ts';
import { Refusal } from './errors.ts';

/** Named areas for people who do not want to type numbers. */
const AREAS: Record<string, Box> = {
  full: { x: 0, y: 0, w: 1, h: 1 },
  left: { x: 0.03, y: 0.1, w: 0.44, h: 0.8 },
  right: { x: 0.53, y: 0.1, w: 0.44, h: 0.8 },
  top: { x: 0.1, y: 0.03, w: 0.8, h: 0.44 },
  bottom: { x: 0.1, y: 0.53, w: 0.8, h: 0.44 },
  center: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 },
  'top-left': { x: 0.03, y: 0.03, w: 0.44, h: 0.44 },
  'top-right': { x: 0.53, y: 0.03, w: 0.44, h: 0.44 },
  'bottom-left': { x: 0.03, y: 0.53, w: 0.44, h: 0.44 },
  'bottom-right': { x: 0.53, y: 0.53, w: 0.44, h: 0.44 },
};

export const LAYOUT_SYNTAX_HELP =
  'Write one region per line or separate them with `;`: `label @ x y w h` in percent of the image from the top-left corner, ' +
  'or `label @ left` (also right, top, bottom, center, top-left, top-right, bottom-left, bottom-right, full). ' +
  'Add a longer description after a colon: `a cat: a fluffy ginger cat asleep @ 5 40 40 50`, ' +
  'and styles (see /styles) at the end: `a cat @ left <watercolor:0.8>` (the scale is optional, default 1).';

/** `<name>` or `<name:scale>`: a region's style. */
const STYLE_TAG = /<([^<>]*)>/g;

function parseStyles(entry: string, n: number): { rest: string; loras: StyleRef[] } {
  const loras: StyleRef[] = [];
  for (const m of entry.matchAll(STYLE_TAG)) {
    const body = m[1]!.trim();
    const colon = body.lastIndexOf(':');
    const name = (colon >= 0 ? body.slice(0, colon) : body).trim();
    const scaleText = colon >= 0 ? body.slice(colon + 1).trim() : '1';
    if (!name)
      throw new Refusal(`Region ${n}: \`<${body}>\` names no style. Write \`<watercolor>\` or \`<watercolor:0.8>\`.`);
    const scale = Number(scaleText);
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(scaleText) || scale < LORA_LIMITS.minScale || scale > LORA_LIMITS.maxScale)
      throw new Refusal(
        `Region ${n}: the scale of the style "${name}" must be a number from ${LORA_LIMITS.minScale} to ${LORA_LIMITS.maxScale} (got "${scaleText}").`,
      );
    if (loras.some((l) => l.name === name)) throw new Refusal(`Region ${n} names the style "${name}" twice.`);
    loras.push({ name, scale });
  }
  const rest = entry.replace(STYLE_TAG, ' ').trim();
  if (/[<>]/.test(rest))
    throw new Refusal(`Region ${n}: a style is written \`<name>\` or \`<name:0.8>\`, with both angle brackets.`);
  return { rest, loras };
}

function parseWhere(where: string, n: number): Box {
  const named = AREAS[where.trim().toLowerCase()];
  if (named) return named;
  const nums = where
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((t) => t.replace(/%$/, ''));
  if (nums.length !== 4 || nums.some((t) => !/^\d+(\.\d+)?$/.test(t))) {
    throw new Refusal(`Region ${n}: "${where.trim()}" is not a place. ${LAYOUT_SYNTAX_HELP}`);
  }
  const [x, y, w, h] = nums.map((t) => Number(t) / 100) as [number, number, number, number];
  if (w <= 0 || h <= 0) throw new Refusal(`Region ${n}: width and height must be larger than 0.`);
  if (x + w > 1.0001 || y + h > 1.0001)
    throw new Refusal(
      `Region ${n}: the box reaches past the edge of the image (x + w and y + h must stay within 100).`,
    );
  return { x, y, w, h };
}

/** Parses the /layout text syntax into regions (ids r1, r2, …). Errors say which region and how to fix it. */
export function parseLayoutText(text: string, maxRegions: number): Omit<Region, never>[] {
  const entries = text
    .split(/[;\n]/)
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new Refusal(`Give at least one region. ${LAYOUT_SYNTAX_HELP}`);
  if (entries.length > maxRegions)
    throw new Refusal(`That is ${entries.length} regions; at most ${maxRegions} are allowed here.`);
  return entries.map((styled, i) => {
    const n = i + 1;
    const { rest: entry, loras } = parseStyles(styled, n);
    const at = entry.lastIndexOf('@');
    if (at < 0)
      throw new Refusal(`Region ${n} ("${entry.slice(0, 60)}") has no \`@\` and place. ${LAYOUT_SYNTAX_HELP}`);
    const what = entry.slice(0, at).trim();
    const colon = what.indexOf(':');
    const label = (colon >= 0 ? what.slice(0, colon) : what).trim();
    const prompt = (colon >= 0 ? what.slice(colon + 1) : what).trim() || label;
    if (!label) throw new Refusal(`Region ${n} has no label before the \`@\`.`);
    if (label.length > 120)
      throw new Refusal(`Region ${n}: keep the label under 120 characters (put details after a colon).`);
    if (prompt.length > 600) throw new Refusal(`Region ${n}: keep the description under 600 characters.`);
    return { id: `r${n}`, label, prompt, box: parseWhere(entry.slice(at + 1), n), ...(loras.length ? { loras } : {}) };
  });
}
