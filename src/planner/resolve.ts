/**
 * Deterministic resolution of spatial references over a Scene: "the left cat", "the second mug from the right",
 * "the bigger dog", "the one on top", "both cats". Used to check the LLM editor's choice and by the offline
 * editor. When the words do not single out one region, the answer is "ambiguous" with a short question, so
 * that nobody repaints the wrong thing.
 */
import type { Box, Region, Scene } from '../scene/schema.ts';
import { ADJECTIVES, COLOURS, ORDINALS, singularize, isPluralNoun } from './lexicon.ts';

export type Resolution =
  | { kind: 'unique'; id: string }
  | { kind: 'many'; ids: string[] }
  | { kind: 'ambiguous'; ids: string[]; question: string }
  | { kind: 'none'; noun: string; question: string }
  | { kind: 'unparsed' };

type Dir = 'left' | 'right' | 'top' | 'bottom' | 'middle';

interface Reference {
  noun?: string;
  any: boolean;
  plural: boolean;
  attributes: string[];
  dirs: Dir[];
  ordinal?: number;
  /** Axis of counting for "second from the right"; unset = reading order. */
  from?: Dir;
  size?: 'big' | 'small';
  pronoun: boolean;
}

const DETERMINERS = new Set([
  'the',
  'that',
  'this',
  'those',
  'these',
  'a',
  'an',
  'my',
  'your',
  'our',
  'his',
  'her',
  'its',
  'their',
]);
const PREPS = new Set([
  'on',
  'at',
  'in',
  'to',
  'of',
  'from',
  'side',
  'hand',
  'most',
  'part',
  'half',
  'corner',
  'edge',
  'image',
  'picture',
  'scene',
  'photo',
  'is',
  'that',
  'which',
  'who',
  'there',
  'in',
  'sitting',
  'standing',
  'placed',
  'located',
]);
const ALL_WORDS = new Set(['all', 'both', 'every', 'each', 'them']);
const ANY_NOUNS = new Set([
  'one',
  'ones',
  'thing',
  'things',
  'object',
  'objects',
  'item',
  'items',
  'region',
  'box',
  'it',
  'guy',
]);
const PRONOUNS = new Set(['it', 'them', 'him', 'her', 'they']);
const DIRS: Record<string, Dir> = {
  left: 'left',
  leftmost: 'left',
  'left-hand': 'left',
  'left-most': 'left',
  west: 'left',
  right: 'right',
  rightmost: 'right',
  'right-hand': 'right',
  'right-most': 'right',
  east: 'right',
  top: 'top',
  upper: 'top',
  topmost: 'top',
  uppermost: 'top',
  higher: 'top',
  highest: 'top',
  above: 'top',
  up: 'top',
  bottom: 'bottom',
  lower: 'bottom',
  lowest: 'bottom',
  bottommost: 'bottom',
  below: 'bottom',
  down: 'bottom',
  middle: 'middle',
  center: 'middle',
  centre: 'middle',
  central: 'middle',
  mid: 'middle',
};
const BIG = new Set(['bigger', 'biggest', 'larger', 'largest', 'big', 'large', 'huge', 'giant', 'taller', 'tallest']);
const SMALL = new Set(['smaller', 'smallest', 'little', 'small', 'tiny', 'shorter', 'shortest', 'littler', 'littlest']);
const SYNONYMS: Record<string, string[]> = {
  cat: ['kitty', 'kitten', 'kittie'],
  dog: ['puppy', 'pup', 'doggo', 'doggy', 'hound'],
  car: ['automobile', 'vehicle'],
  mug: ['cup'],
  bike: ['bicycle'],
  bicycle: ['bike'],
  sofa: ['couch'],
  couch: ['sofa'],
  rabbit: ['bunny'],
  bunny: ['rabbit'],
};

function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/['’]s\b/g, '')
    .replace(/[^\p{L}\p{N}\s-]/gu, ' ')
    .split(/\s+/)
    .filter(Boolean);
}

export function parseReference(phrase: string): Reference {
  const ref: Reference = { any: false, plural: false, attributes: [], dirs: [], pronoun: false };
  const w = words(phrase);
  const rest: string[] = [];
  for (let i = 0; i < w.length; i++) {
    const t = w[i]!;
    if (t === 'from' && w[i + 1] === 'the' && DIRS[w[i + 2] ?? '']) {
      ref.from = DIRS[w[i + 2]!];
      i += 2;
      continue;
    }
    if (t === 'from' && DIRS[w[i + 1] ?? '']) {
      ref.from = DIRS[w[i + 1]!];
      i += 1;
      continue;
    }
    if (DETERMINERS.has(t) || PREPS.has(t)) continue;
    if (ALL_WORDS.has(t)) {
      ref.plural = true;
      if (t === 'them') ref.pronoun = true;
      continue;
    }
    if (PRONOUNS.has(t)) {
      ref.pronoun = true;
      continue;
    }
    if (ORDINALS[t] !== undefined) {
      ref.ordinal = ORDINALS[t];
      continue;
    }
    if (t === 'last') {
      ref.ordinal = -1;
      continue;
    }
    if (DIRS[t]) {
      ref.dirs.push(DIRS[t]);
      continue;
    }
    if (BIG.has(t)) {
      ref.size = 'big';
      continue;
    }
    if (SMALL.has(t)) {
      ref.size = 'small';
      continue;
    }
    rest.push(t);
  }
  const nounWord = rest.pop();
  if (nounWord) {
    if (ANY_NOUNS.has(nounWord)) {
      ref.any = true;
      if (nounWord.endsWith('s')) ref.plural = true;
    } else {
      ref.noun = singularize(nounWord);
      if (isPluralNoun(nounWord)) ref.plural = true;
    }
  } else if (ref.dirs.length || ref.size || ref.ordinal !== undefined) {
    ref.any = true;
  }
  ref.attributes = rest.filter((x) => COLOURS.has(x) || ADJECTIVES.has(x) || x.length > 2);
  // "the top one", "on top": a superlative picks one even if "ones" sounded plural.
  if (ref.ordinal !== undefined || ref.size || (ref.dirs.length && !ALL_WORDS.has(w[0] ?? '')))
    ref.plural = ref.plural && ALL_WORDS.has(w[0] ?? '');
  return ref;
}

function regionWords(r: Region): { label: string[]; prompt: string[] } {
  return { label: words(r.label).map(singularize), prompt: words(r.prompt).map(singularize) };
}

/** One-way: "the person" may be any of these, but "the man" is not "the woman". */
const HYPONYMS: Record<string, string[]> = {
  person: ['man', 'woman', 'girl', 'boy', 'child', 'kid', 'lady', 'guy', 'human', 'people', 'person'],
  animal: [
    'cat',
    'dog',
    'bird',
    'horse',
    'cow',
    'sheep',
    'rabbit',
    'fox',
    'bear',
    'lion',
    'tiger',
    'elephant',
    'mouse',
  ],
  vehicle: ['car', 'bus', 'truck', 'bike', 'bicycle', 'motorcycle', 'train', 'boat'],
};

const SYNONYM_INDEX = new Map<string, Set<string>>();
for (const [k, list] of Object.entries(SYNONYMS)) {
  for (const w of [k, ...list]) {
    const set = SYNONYM_INDEX.get(w) ?? new Set<string>();
    for (const x of [k, ...list]) set.add(x);
    SYNONYM_INDEX.set(w, set);
  }
}

function matchesNoun(r: Region, noun: string): 'label' | 'prompt' | undefined {
  const { label, prompt } = regionWords(r);
  const forms = [noun, ...(SYNONYM_INDEX.get(noun) ?? []), ...(HYPONYMS[noun] ?? [])].map(singularize);
  if (forms.some((f) => label.includes(f))) return 'label';
  if (forms.some((f) => prompt.includes(f))) return 'prompt';
  return undefined;
}

const centre = (b: Box) => ({ x: b.x + b.w / 2, y: b.y + b.h / 2 });

/** Where a box is, in words: "on the left", "at the top right", "in the middle". */
export function describePosition(b: Box): string {
  const c = centre(b);
  const h = c.x < 0.4 ? 'left' : c.x > 0.6 ? 'right' : '';
  const v = c.y < 0.4 ? 'top' : c.y > 0.6 ? 'bottom' : '';
  if (v && h) return `at the ${v} ${h}`;
  if (v) return `at the ${v}`;
  if (h) return `on the ${h}`;
  return 'in the middle';
}

/** Names candidates so a person can pick one: position, plus the label when labels differ. */
function nameCandidates(regions: Region[]): string[] {
  const the = (label: string) => label.replace(/^(a|an|the)\s+/i, 'the ');
  const labels = regions.map((r) => r.label.toLowerCase());
  if (new Set(labels).size === labels.length) return regions.map((r) => the(r.label));
  const sameLabel = labels.every((l) => l === labels[0]);
  const positions = regions.map((r) => describePosition(r.box));
  const unique = new Set(positions).size === positions.length;
  const byX = [...regions].sort((a, b) => centre(a.box).x - centre(b.box).x);
  return regions.map((r, i) => {
    const where = unique ? positions[i]! : `${ordinalWord(byX.indexOf(r) + 1)} from the left`;
    return sameLabel ? `the one ${where}` : `${the(r.label)} ${where}`;
  });
}

function ordinalWord(n: number): string {
  return (
    ['first', 'second', 'third', 'fourth', 'fifth', 'sixth', 'seventh', 'eighth', 'ninth', 'tenth'][n - 1] ?? `${n}th`
  );
}

function question(noun: string | undefined, regions: Region[]): string {
  const names = nameCandidates(regions);
  const list =
    names.length <= 2 ? names.join(' or ') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
  return `Which ${noun ?? 'one'} do you mean: ${list}?`;
}

/** Keeps the best-scoring candidates (lower is better); ties within `margin` stay together. */
function best(regions: Region[], score: (r: Region) => number, margin: number): Region[] {
  const scored = regions.map((r) => ({ r, s: score(r) })).sort((a, b) => a.s - b.s);
  return scored.filter((x) => x.s - scored[0]!.s < margin).map((x) => x.r);
}

function dirScore(d: Dir, b: Box, group: Region[]): number {
  const c = centre(b);
  switch (d) {
    case 'left':
      return c.x;
    case 'right':
      return 1 - c.x;
    case 'top':
      return c.y;
    case 'bottom':
      return 1 - c.y;
    case 'middle': {
      const mx = group.reduce((s, r) => s + centre(r.box).x, 0) / group.length;
      const my = group.reduce((s, r) => s + centre(r.box).y, 0) / group.length;
      const spreadX = Math.max(...group.map((r) => centre(r.box).x)) - Math.min(...group.map((r) => centre(r.box).x));
      const spreadY = Math.max(...group.map((r) => centre(r.box).y)) - Math.min(...group.map((r) => centre(r.box).y));
      return spreadX >= spreadY ? Math.abs(c.x - mx) : Math.abs(c.y - my);
    }
  }
}

function axisSort(regions: Region[], from: Dir | undefined): Region[] {
  const r = [...regions];
  if (from === 'right') return r.sort((a, b) => centre(b.box).x - centre(a.box).x);
  if (from === 'top') return r.sort((a, b) => centre(a.box).y - centre(b.box).y);
  if (from === 'bottom') return r.sort((a, b) => centre(b.box).y - centre(a.box).y);
  if (from === 'left') return r.sort((a, b) => centre(a.box).x - centre(b.box).x);
  // Reading order: rows (centres within a quarter of the image) top to bottom, then left to right.
  return r.sort((a, b) => {
    const dy = centre(a.box).y - centre(b.box).y;
    return Math.abs(dy) > 0.25 ? dy : centre(a.box).x - centre(b.box).x;
  });
}

const MARGIN = 0.04;

export interface ResolveOptions {
  /** Ids the previous turn talked about; "it"/"them" refer to these. */
  lastIds?: string[];
}

export function resolveReference(scene: Scene, phrase: string, opts: ResolveOptions = {}): Resolution {
  const ref = parseReference(phrase);
  if (ref.pronoun && !ref.noun) {
    const ids = (opts.lastIds ?? []).filter((id) => scene.regions.some((r) => r.id === id));
    if (ids.length === 1) return { kind: 'unique', id: ids[0]! };
    if (ids.length > 1) return { kind: 'many', ids };
    if (scene.regions.length === 1) return { kind: 'unique', id: scene.regions[0]!.id };
    if (ref.plural && scene.regions.length) return { kind: 'many', ids: scene.regions.map((r) => r.id) };
    return { kind: 'unparsed' };
  }
  if (!ref.noun && !ref.any) return { kind: 'unparsed' };
  let candidates: Region[];
  if (ref.any) candidates = [...scene.regions];
  else {
    const inLabel = scene.regions.filter((r) => matchesNoun(r, ref.noun!) === 'label');
    candidates = inLabel.length ? inLabel : scene.regions.filter((r) => matchesNoun(r, ref.noun!) === 'prompt');
  }
  if (!candidates.length) {
    const noun = ref.noun ?? 'one';
    return {
      kind: 'none',
      noun,
      question: `I can't find ${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun} in this picture. ${scene.regions.length ? `It has ${[...new Set(scene.regions.map((r) => r.label))].join(', ')}.` : 'It has no separate objects.'} Which one do you mean?`,
    };
  }
  if (ref.attributes.length) {
    const withAttrs = candidates.filter((r) => {
      const { label, prompt } = regionWords(r);
      return ref.attributes.every((a) => label.includes(singularize(a)) || prompt.includes(singularize(a)));
    });
    if (withAttrs.length) candidates = withAttrs;
  }
  const selective = ref.dirs.length > 0 || ref.ordinal !== undefined || ref.size !== undefined;
  if (ref.plural && !selective) return { kind: 'many', ids: candidates.map((r) => r.id) };
  if (candidates.length === 1) return { kind: 'unique', id: candidates[0]!.id };
  let pool = candidates;
  if (ref.ordinal !== undefined) {
    const sorted = axisSort(
      pool,
      ref.from ?? (ref.dirs.length === 1 && ref.dirs[0] !== 'middle' ? ref.dirs[0] : undefined),
    );
    const k = ref.ordinal < 0 ? sorted.length - 1 : ref.ordinal - 1;
    if (k >= sorted.length) {
      return {
        kind: 'ambiguous',
        ids: pool.map((r) => r.id),
        question: `There ${pool.length === 1 ? 'is' : 'are'} only ${pool.length}. ${question(ref.noun, pool)}`,
      };
    }
    pool = [sorted[k]!];
  } else if (ref.dirs.length) {
    const group = pool;
    pool = best(pool, (r) => ref.dirs.reduce((s, d) => s + dirScore(d, r.box, group), 0), MARGIN * ref.dirs.length);
  }
  if (pool.length > 1 && ref.size) {
    const area = (r: Region) => r.box.w * r.box.h;
    const sorted = [...pool].sort((a, b) => (ref.size === 'big' ? area(b) - area(a) : area(a) - area(b)));
    const first = area(sorted[0]!),
      second = area(sorted[1]!);
    const ratio = Math.max(first, second) / Math.max(1e-9, Math.min(first, second));
    pool =
      ratio >= 1.15
        ? [sorted[0]!]
        : sorted.filter((r) => Math.max(area(r), first) / Math.max(1e-9, Math.min(area(r), first)) < 1.15);
  }
  if (pool.length === 1) return { kind: 'unique', id: pool[0]!.id };
  return { kind: 'ambiguous', ids: pool.map((r) => r.id), question: question(ref.noun, pool) };
}
