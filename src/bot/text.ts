import type { Scene } from '../scene/schema.ts';

/** Nothing the bot posts may ping anyone: it often echoes what users typed. */
export const NO_MENTIONS = { parse: [] as never[], repliedUser: false };
/** The same for raw REST bodies (snake_case, as Discord's API spells it). */
export const NO_MENTIONS_API = { parse: [] as never[], replied_user: false };

const CONTENT_MAX = 2000;

// Format characters (zero-width spaces, bidi overrides such as U+202E) and control characters (NUL…) other
// than line breaks and tabs. The zero-width joiner stays: emoji sequences (👩‍🎨) need it.
const HIDDEN = /(?![\n\r\t\u200d])[\p{Cc}\p{Cf}]/gu;

/**
 * Text as it shows: without characters that are invisible or reorder what follows. A prompt made only of
 * them is empty; deny-list words cannot hide behind them; nothing echoed can flip the bot's own message.
 */
export function visibleText(text: string): string {
  const out = text.replace(HIDDEN, '');
  return /[^\s\u200d]/u.test(out) ? out : '';
}

/** Discord refuses message content over 2000 characters; hidden characters never reach a message. */
export function clip(text: string, max = CONTENT_MAX): string {
  const shown = text.replace(HIDDEN, '');
  return shown.length <= max ? shown : `${shown.slice(0, max - 1)}…`;
}

/**
 * User text shown back in a message: one line, shortened, and with markdown control characters
 * neutralised so a prompt cannot restyle or break out of the bot's message.
 */
export function quote(text: string, max = 200): string {
  const flat = text.replace(HIDDEN, '').replace(/\s+/g, ' ').trim();
  const short = flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  return `“${short.replace(/([\\*_~`|>#[\]()-])/g, '\\$1')}”`;
}

export function regionList(scene: Scene, max = 10): string {
  const items = scene.regions.slice(0, max).map((r) => `${r.id}: ${r.label}`);
  if (scene.regions.length > max) items.push(`… and ${scene.regions.length - max} more`);
  return items.length ? items.join(' · ') : 'no regions (one picture-wide prompt)';
}

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

export function positionText(position: number): string {
  if (position <= 0) return 'painting now';
  if (position === 1) return 'next in the queue';
  return `position ${position} in the queue`;
}

export function progressBar(step: number, total: number, width = 12): string {
  const filled = total > 0 ? Math.round((step / total) * width) : 0;
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
}
