/**
 * Styles (LoRAs in LORA_DIR) in the planner's words. The offline rules find a style by its name in phrases people
 * write ("in the style of watercolor", "watercolor style", "make the cat a watercolor", "as an ink drawing" when
 * "ink" is a style); the LLM gets the list of styles with what each looks like and answers with names, which are
 * checked here against that list (an invented name is dropped with a warning, never painted).
 */
import type { StyleSummary } from '../engine/lora/catalog.ts';
import { LORA_LIMITS } from '../rag/params.ts';
import type { Scene, StyleRef } from '../scene/schema.ts';
import type { SceneLimits } from '../scene/validate.ts';
import { editOffline } from './offline-edit.ts';
import { resolveReference } from './resolve.ts';
import type { Edit } from '../scene/schema.ts';

/** A style the planner may give the picture or a region. */
export interface StyleChoice {
  name: string;
  description?: string;
  triggerWords: string[];
}

/** A LORA_DIR style as the planner sees it: kohya's title is the output name, usually the stem: no description. */
export function styleChoiceOf(s: StyleSummary): StyleChoice {
  const about = s.meta.description ?? (s.meta.title !== s.name ? s.meta.title : undefined);
  return { name: s.name, ...(about ? { description: about } : {}), triggerWords: s.meta.triggerWords };
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A style name as people write it: case aside, `-`, `_` and spaces alike ("pixel-art" = "pixel art"). */
function namePattern(name: string): string {
  return name
    .trim()
    .split(/[-_\s]+/)
    .map(escape)
    .join('[-_\\s]+');
}

/** What a phrase naming a style looks like around the name (`N`), most specific first. */
const KIND = '(?:\\s+(?:style|drawing|painting|picture|look|version|rendering))?';
const FORMS = [
  'in\\s+(?:the\\s+)?style\\s+of\\s+(?:an?\\s+)?N',
  `(?:in|as)\\s+(?:an?\\s+)?N${KIND}`,
  `(?:into|to)\\s+(?:an?\\s+)?N${KIND}`,
  'N(?:-|\\s+)style',
  // A bare name only at the end: "make the cat a watercolor", not "make the cat (a style named like a thing) …".
  '(?:an?\\s+)?N\\s*$',
];

export interface StyleMention {
  style: StyleChoice;
  /** The text with the phrase taken out (and spaces tidied). */
  rest: string;
}

/**
 * The first style named in `text` by one of `forms` (longest names first, so "ink wash" wins over "ink"), with
 * the phrase removed. Words only: "inky" does not name "ink".
 */
function findMention(text: string, styles: StyleChoice[], forms: string[]): StyleMention | undefined {
  const sorted = [...styles].sort((a, b) => b.name.length - a.name.length);
  for (const form of forms)
    for (const style of sorted) {
      const re = new RegExp(
        `(^|[^\\p{L}\\p{N}])${form.replace('N', () => namePattern(style.name))}(?![\\p{L}\\p{N}])`,
        'iu',
      );
      const m = re.exec(text);
      if (!m) continue;
      const rest = (text.slice(0, m.index) + m[1] + text.slice(m.index + m[0].length))
        .replace(/\s+([,.;!?])/g, '$1')
        .replace(/\s{2,}/g, ' ')
        .trim();
      return { style, rest };
    }
  return undefined;
}

/**
 * Planning: "a cat and a dog in the style of watercolor" / "a watercolor style picture of a cat" → the whole
 * picture's style, and the description without it. A bare name ("a watercolor") does not count here: in a
 * description it is more likely a thing to draw than a style.
 */
export function styleInDescription(text: string, styles: StyleChoice[]): StyleMention | undefined {
  return findMention(text, styles, FORMS.slice(0, 1).concat(['in\\s+(?:an?\\s+)?N\\s+style', 'N(?:-|\\s+)style']));
}

const VERBS = /^(?:please\s+)?(?:make|paint|turn|render|redo|restyle|draw|change|do|give|put|set|repaint)\s+/i;
const WHOLE =
  /^(?:everything|it all|all of it|the (?:whole|entire) (?:picture|image|thing|scene)|the picture|the image)$/i;
const CLEAR =
  /^(?:(?:please\s+)?(?:remove|drop|take off|take away|clear)\s+(?:the\s+)?(?:style|styles|lora|loras)\s+(?:from|of|on)\s+(.+)|(?:no|without)\s+(?:a\s+)?(?:style|styles)\s+(?:for|on)\s+(.+)|(.+?)\s+(?:without|with no)\s+(?:a\s+)?(?:style|styles))$/i;

/**
 * Editing offline: "make the left cat a watercolor", "paint the dog in ink style", "the bird as a watercolor",
 * "make everything watercolor", "remove the style from the cat". Returns undefined when the instruction names no
 * style (the other rules take it), a question when the region it means is unclear.
 */
export function styleEdit(
  scene: Scene,
  instruction: string,
  styles: StyleChoice[],
  lastIds: string[] = [],
  limits?: SceneLimits,
): { edit: Edit; targets: string[] } | undefined {
  const text = instruction.trim().replace(/[.!]+$/, '');
  const cleared = CLEAR.exec(text);
  if (cleared) {
    const phrase = (cleared[1] ?? cleared[2] ?? cleared[3] ?? '').replace(VERBS, '').trim();
    if (WHOLE.test(phrase))
      return { edit: { kind: 'change', update: [], add: [], remove: [], loras: [] }, targets: [] };
    const target = pick(scene, phrase, lastIds);
    if (!target || 'question' in target) return target && { edit: target.question, targets: [] };
    return {
      edit: { kind: 'change', update: target.ids.map((id) => ({ id, loras: [] })), add: [], remove: [] },
      targets: target.ids,
    };
  }
  if (!styles.length) return undefined;
  const m = findMention(text, styles, FORMS);
  if (!m) return undefined;
  const phrase = m.rest
    .replace(VERBS, '')
    .replace(/\s+(?:look|looks|looking)$/i, '')
    .replace(/^(?:the\s+)?style\s+of\s+/i, '')
    .trim();
  const ref: StyleRef = { name: m.style.name, scale: 1 };
  if (!phrase || WHOLE.test(phrase))
    return { edit: { kind: 'change', update: [], add: [], remove: [], loras: [ref] }, targets: [] };
  const target = pick(scene, phrase, lastIds);
  const ids = target && !('question' in target) ? target.ids : undefined;
  // "make the cat orange in ink style": the rest is a change of its own (the reference alone does not explain it);
  // the style goes on the regions that change.
  if (!ids || (ids.length === 1 && leftover(phrase, scene.regions.find((r) => r.id === ids[0])!.label))) {
    const r = editOffline(scene, m.rest, { lastIds, ...(limits ? { limits } : {}) });
    const changed = r.edit.kind === 'change' ? r.edit.update.filter((u) => !ids || ids.includes(u.id)) : [];
    if (r.edit.kind === 'change' && changed.length) {
      const styled = new Set(changed.map((u) => u.id));
      return {
        edit: { ...r.edit, update: r.edit.update.map((u) => (styled.has(u.id) ? { ...u, loras: [ref] } : u)) },
        targets: r.targets,
      };
    }
  }
  if (!target) return undefined;
  if ('question' in target) return { edit: target.question, targets: [] };
  return {
    edit: { kind: 'change', update: target.ids.map((id) => ({ id, loras: [ref] })), add: [], remove: [] },
    targets: target.ids,
  };
}

/** Words a reference to a region is made of, besides its label's: articles, places, order, size. */
const REFERENCE_WORDS = new Set(
  (
    'the a an one ones it them that this those these both all each every of on in at to from ' +
    'left right top bottom middle center centre upper lower front back far near side corner ' +
    'first second third fourth last other big bigger biggest small smaller smallest large larger largest tall taller'
  ).split(' '),
);

/** Whether a phrase says more than which region (a word that is neither a reference word nor in its label). */
function leftover(phrase: string, label: string): boolean {
  const own = new Set(label.toLowerCase().split(/[^\p{L}\p{N}]+/u));
  return phrase
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean)
    .some((w) => !REFERENCE_WORDS.has(w) && !own.has(w) && !own.has(w.replace(/s$/, '')));
}

function pick(
  scene: Scene,
  phrase: string,
  lastIds: string[],
): { ids: string[] } | { question: Extract<Edit, { kind: 'clarify' }> } | undefined {
  const res = resolveReference(scene, phrase, { lastIds });
  if (res.kind === 'unique') return { ids: [res.id] };
  if (res.kind === 'many') return { ids: res.ids };
  if (res.kind === 'ambiguous' || res.kind === 'none') return { question: { kind: 'clarify', question: res.question } };
  return undefined;
}

/** The LLM's style choices kept when they name a style there is (scale clamped into range), the rest dropped. */
export function checkedStyles(
  wire: { name: string; scale: number | null }[] | null | undefined,
  styles: StyleChoice[],
  warnings: string[],
  who: string,
): StyleRef[] {
  const out: StyleRef[] = [];
  for (const s of wire ?? []) {
    const known = styles.find((x) => x.name.toLowerCase() === s.name.trim().toLowerCase());
    if (!known) {
      warnings.push(`the LLM gave ${who} the style "${s.name}", which does not exist: left out`);
      continue;
    }
    if (out.some((o) => o.name === known.name)) continue;
    const scale = s.scale === null || !Number.isFinite(s.scale) ? 1 : s.scale;
    out.push({ name: known.name, scale: Math.min(LORA_LIMITS.maxScale, Math.max(LORA_LIMITS.minScale, scale)) });
  }
  return out;
}

/** The style list as the LLM reads it: one line per style, with what it looks like. */
export function stylesForPrompt(styles: StyleChoice[]): string {
  return styles
    .slice(0, 50)
    .map((s) => {
      const about = [s.description, s.triggerWords.length ? `trigger words: ${s.triggerWords.join(', ')}` : '']
        .filter(Boolean)
        .join('; ');
      return `- ${s.name}${about ? `: ${about.slice(0, 200)}` : ''}`;
    })
    .join('\n');
}
