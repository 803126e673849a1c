/**
 * The offline planner's reader: an English scene description → objects (with counts and attributes bound to
 * them), spatial relations, a style, a setting and exclusions. A small hand-written grammar, not a language
 * model: it covers the common shapes of image prompts and degrades to "everything is one caption".
 */
import { knownSize } from './sizes.ts';
import {
  ADJECTIVES,
  ATTACHMENTS,
  COLOURS,
  CROWDS,
  GROUP_WORDS,
  MULTIPLIERS,
  NEUTRAL_PICTURE_WORDS,
  NOT_OBJECTS,
  NUMBER_WORDS,
  PARTICIPLES,
  PAST_PARTICIPLES,
  PLACES,
  QUANTITY_WORDS,
  RIDE_VERBS,
  SUPPORT_PARTS,
  SKY_WORDS,
  STYLE_PHRASES,
  STYLE_WORDS,
  TIME_WORDS,
  isPluralNoun,
  pluralize,
  singularize,
  withArticle,
  stripArticle,
} from './lexicon.ts';

export type AnchorH = 'left' | 'center' | 'right';
export type AnchorV = 'top' | 'middle' | 'bottom';

export interface Entity {
  index: number;
  /** Singular head noun, for matching ("apple"). */
  head: string;
  /** Label of one instance, with article and attributes ("a red apple"). */
  label: string;
  count: number;
  /** True when the text gave the number ("three cats", "2 dogs"), not just a plural. */
  counted: boolean;
  /** A crowd drawn as one region ("a flock of birds"); label is then the whole phrase. */
  group: boolean;
  anchorH?: AnchorH;
  anchorV?: AnchorV;
  depth?: 'front' | 'back';
  /** What the object does ("laying on a bed", "holding a red balloon"): in its prompt, never in its label. */
  action?: string;
  /** A counted group drawn as one region: the number as written ("three thousand") and the collective noun. */
  crowd?: { count: number; written: string; noun: string };
}

/** A comparison of two objects' counts ("more cars than trucks"): `a` has more, fewer, as many or k times `b`. */
export interface Comparison {
  a: number;
  b: number;
  rel: 'more' | 'fewer' | 'equal' | 'times';
  /** For 'times': the factor (2 for "twice as many"). */
  k?: number;
  /** For 'more' and 'fewer': by how many ("three more"). */
  diff: number;
  /** The count of `b` the text gave ("than the two dogs"), kept when counts are chosen again. */
  given?: number;
}

export type Relation =
  | { kind: 'left'; a: number; b: number }
  | { kind: 'above'; a: number; b: number }
  | { kind: 'next'; a: number; b: number }
  | { kind: 'between'; a: number; b: number; c?: number }
  /** Contact relations: `a` is placed against `b` (its support, container, occluder or holder). */
  | { kind: 'on' | 'under' | 'inside' | 'front' | 'behind' | 'held'; a: number; b: number };

/** Relations that put one box against another (overlapping), rather than beside it. */
export const CONTACT = new Set<Relation['kind']>(['on', 'under', 'inside', 'front', 'behind', 'held']);

export interface Description {
  entities: Entity[];
  relations: Relation[];
  comparisons: Comparison[];
  style?: string;
  /** Places and surfaces ("on a wooden table"), and times ("at sunset"), in order of mention. */
  settings: { prep: string; np: string }[];
  exclude: string[];
  /** The caption without its negations (FLUX has no negative prompt: naming a thing draws it). */
  caption: string;
  /** Objects in mention order left → right (or top → bottom). */
  order?: 'x' | 'y';
  /** False when the text is mostly not Latin script: the offline planner only reads English. */
  english: boolean;
}

/** A number written as a word or digits ("three", "3"), or undefined. */
function countWord(w: string | undefined): number | undefined {
  if (!w) return undefined;
  if (/^\d+$/.test(w)) return Number(w);
  const compound =
    /^(twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)-(one|two|three|four|five|six|seven|eight|nine)$/.exec(w);
  if (compound) return TENS[compound[1]!]! + NUMBER_WORDS[compound[2]!]!;
  if (TENS[w]) return TENS[w];
  const n = NUMBER_WORDS[w];
  return n !== undefined && !['few', 'several', 'couple', 'dozen', 'both'].includes(w) ? n : undefined;
}

const TENS: Record<string, number> = {
  twenty: 20,
  thirty: 30,
  forty: 40,
  fifty: 50,
  sixty: 60,
  seventy: 70,
  eighty: 80,
  ninety: 90,
};

/** Nouns that frame the picture rather than name a thing in it ("a close-up of", "an image of"). */
const FRAME_NOUNS = new Set([
  'picture',
  'image',
  'photo',
  'photograph',
  'pic',
  'snapshot',
  'shot',
  'view',
  'closeup',
  'close-up',
  'closeups',
  'close-ups',
  'scene',
]);
/** Auxiliaries of a relative clause or a progressive ("that is", "who are", "is being"). */
const AUX = new Set([
  'is',
  'are',
  'was',
  'were',
  "'s",
  'has',
  'have',
  'had',
  'been',
  'being',
  'be',
  'seems',
  'appears',
]);
/** Words between a verb and its object that belong to the verb ("looking up at", "lying down on"). */
const PARTICLES = new Set([
  'up',
  'down',
  'out',
  'off',
  'away',
  'back',
  'together',
  'around',
  'about',
  'high',
  'low',
  'far',
  'nearby',
  'alone',
  'overhead',
]);
/** Where an action's words end: the next clause, or a relation to another object than the action's. */
const ACTION_STOP = new Set([
  ',',
  ';',
  'and',
  'while',
  'then',
  'plus',
  'but',
  'as',
  'next',
  'beside',
  'besides',
  'left',
  'right',
  'above',
  'below',
  'behind',
  'between',
  'that',
  'which',
  'who',
]);
/** Nouns in "-ing" that are things, not actions. */
const ING_NOUNS = new Set([
  'building',
  'painting',
  'ceiling',
  'wedding',
  'clothing',
  'icing',
  'pudding',
  'dumpling',
  'duckling',
  'earring',
  'awning',
  'railing',
  'frosting',
  'topping',
  'sibling',
  'seedling',
  'sapling',
  'stuffing',
  'filling',
  'herring',
  'darling',
  'lightning',
  'evening',
  'morning',
  'string',
  'swing',
  'spring',
  'sling',
  'wing',
  'ring',
  'king',
  'thing',
  'offering',
  'drawing',
  'carving',
  'serving',
  'helping',
  'landing',
  'crossing',
  'clearing',
  'opening',
]);

/** Places named without an article ("drinking water", "in snow"). */
const MASS_PLACES = new Set(['water', 'grass', 'sand', 'dirt', 'mud', 'snow', 'rain', 'fog', 'mist', 'space']);

/** Worn or attached to the object before it ("with sprinkles" → sprinkle): part of that object's label. */
function isAttachment(head: string): boolean {
  return ATTACHMENTS.has(head) || ATTACHMENTS.has(pluralize(head));
}

/** A word that acts rather than names: a participle or an "-ed" form the size table does not know. */
function verbish(w: string): boolean {
  if (knownSize(w) || ING_NOUNS.has(w)) return false;
  return (
    PARTICIPLES.has(w) ||
    (w.endsWith('ing') && w.length > 4) ||
    (w.endsWith('ed') && w.length > 4 && !ADJECTIVES.has(w) && !COLOURS.has(w))
  );
}

const PICTURE_NOUNS = new Set([
  'image',
  'picture',
  'photo',
  'photograph',
  'frame',
  'canvas',
  'scene',
  'painting',
  'drawing',
  'shot',
  'composition',
  'view',
]);
/** Words that only say an object is somewhere ("a chair located to the right of…"): dropped. */
const PLACED_WORDS = new Set([
  'located',
  'positioned',
  'placed',
  'situated',
  'seen',
  'shown',
  'depicted',
  'visible',
  'found',
]);
const HOLD_VERBS = new Set(['holding', 'carrying', 'clutching', 'grasping', 'cradling']);
/** Verbs whose object is worn: it stays in the wearer's prompt. */
const WORN_VERBS = new Set(['wearing', 'sporting', 'donning', 'dressed', 'wagging', 'shaking']);
/** Accessories that are things of their own when held ("holding an umbrella"); worn ones stay in the prompt. */
const HOLDABLE = new Set(['umbrella', 'backpack', 'bag', 'handbag', 'sword', 'shield', 'flag', 'camera', 'headphones']);
const SEPARATORS = new Set([',', 'and', 'plus', 'also', 'while', 'then', ';', 'as', 'together', 'along', '&']);
const SKIP = new Set([
  'there',
  'is',
  'are',
  'was',
  'were',
  'has',
  'have',
  'who',
  'which',
  'that',
  'it',
  'its',
  'of',
  'each',
  'other',
  'very',
  'really',
  'just',
  'both',
  'here',
  'well',
]);
const DETERMINERS = new Set([
  'a',
  'an',
  'the',
  'one',
  'some',
  'this',
  'that',
  'these',
  'those',
  'his',
  'her',
  'their',
  'my',
  'your',
  'our',
  'its',
  'another',
  'any',
]);
const RELATION_START = new Set([
  'on',
  'in',
  'at',
  'to',
  'next',
  'beside',
  'besides',
  'near',
  'by',
  'between',
  'above',
  'over',
  'below',
  'under',
  'beneath',
  'underneath',
  'behind',
  'atop',
  'inside',
  'outside',
  'across',
  'along',
  'around',
  'against',
  'into',
  'onto',
  'from',
  'within',
  'alongside',
  'close',
  'during',
  'among',
  'amid',
  'upon',
  'through',
  'facing',
  'opposite',
]);
const NP_BOUNDARY = new Set([
  ...SEPARATORS,
  ...RELATION_START,
  'with',
  'or',
  'but',
  'without',
  'is',
  'are',
  'who',
  'which',
  'that',
  'where',
  'left',
  'right',
  'than',
]);

function tokenize(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/(\d),(?=\d{3}\b)/g, '$1')
    .replace(/[“”"()[\]{}!?]/g, ' ')
    .replace(/([,;:.])/g, ' $1 ')
    .split(/\s+/)
    .map((t) => (t === ':' || t === '.' ? ',' : t))
    .filter(Boolean);
}

/** Share of letters in Latin script; below 0.6 the offline reader gives up on structure. */
export function latinShare(text: string): number {
  const letters = [...text].filter((c) => /\p{L}/u.test(c));
  if (!letters.length) return 1;
  return letters.filter((c) => /\p{Script=Latin}/u.test(c)).length / letters.length;
}

const ENGLISH_WORDS = new Set([
  'the',
  'a',
  'an',
  'and',
  'with',
  'of',
  'on',
  'in',
  'at',
  'to',
  'is',
  'are',
  'its',
  'their',
  'by',
  'from',
  'under',
  'over',
  'next',
]);
const FOREIGN_WORDS = new Set([
  'el',
  'la',
  'los',
  'las',
  'un',
  'una',
  'unos',
  'con',
  'y',
  'del',
  'sobre',
  'en',
  'de',
  'le',
  'les',
  'des',
  'et',
  'avec',
  'une',
  'du',
  'au',
  'aux',
  'sur',
  'der',
  'die',
  'das',
  'und',
  'mit',
  'ein',
  'eine',
  'einem',
  'einer',
  'auf',
  'im',
  'il',
  'lo',
  'gli',
  'di',
  'che',
  'e',
  'per',
  'nel',
  'della',
  'o',
  'os',
  'um',
  'uma',
  'com',
  'na',
  'het',
  'een',
  'met',
  'op',
  'och',
  'ett',
  'med',
  'på',
  'og',
  'af',
  'się',
  'z',
  'w',
  'na',
  'i',
]);

/** English by script and by function words (a Spanish caption is Latin script but not English). */
export function looksEnglish(text: string): boolean {
  if (latinShare(text) < 0.6) return false;
  const w = text
    .toLowerCase()
    .split(/[^\p{L}]+/u)
    .filter(Boolean);
  const en = w.filter((x) => ENGLISH_WORDS.has(x)).length;
  const foreign = w.filter((x) => FOREIGN_WORDS.has(x) && !ENGLISH_WORDS.has(x)).length;
  return !(foreign >= 2 && foreign > en);
}

// ---------------------------------------------------------------------------------------------------------
// Negation and style, found on the text before the grammar runs.

const NEGATION =
  /\b(?:(?:but|and)\s+)?(?:with\s+no|without(?:\s+any)?|with\s+zero|no\s+more|no|zero|0|not\s+any|not(?=\s+(?:a|an)\b)|minus|except(?:\s+for)?|excluding|but\s+not|free\s+of|devoid\s+of)\s+/gi;
const NEG_STOP = new Set([
  'on',
  'in',
  'at',
  'with',
  'near',
  'next',
  'under',
  'above',
  'below',
  'behind',
  'beside',
  'between',
  'to',
  'from',
  'by',
  'during',
  'while',
  'who',
  'that',
  'which',
  'but',
  'inside',
  'around',
  'over',
]);
const NEG_ITEM_START_STOP = new Set([
  'a',
  'an',
  'the',
  'one',
  'two',
  'three',
  'four',
  'five',
  'some',
  'several',
  'many',
  'just',
  'only',
  'simply',
  'but',
  'with',
  'there',
  'instead',
  'except',
  'it',
  'this',
]);

interface Span {
  start: number;
  end: number;
}

function findNegations(text: string): { items: string[]; spans: Span[] } {
  const items: string[] = [];
  const spans: Span[] = [];
  for (const m of text.matchAll(NEGATION)) {
    const start = m.index;
    if (spans.some((s) => start < s.end)) continue;
    let pos = start + m[0].length;
    const words: string[] = [];
    let current: string[] = [];
    const re = /\s*([,]|[\p{L}\p{N}'-]+)/uy;
    let last = pos;
    for (;;) {
      re.lastIndex = pos;
      const w = re.exec(text);
      if (!w) break;
      const word = w[1]!.toLowerCase();
      if (NEG_STOP.has(word) || (word === ',' && !/^\s*[\p{L}]/u.test(text.slice(re.lastIndex)))) break;
      if (word === 'or' || word === 'nor' || word === ',' || word === 'and') {
        // "without dogs or cats" continues the list; "without dogs and a cat on a sofa" starts a new clause.
        const ahead = /^\s*([\p{L}]+)/u.exec(text.slice(re.lastIndex));
        if (word !== 'or' && word !== 'nor' && (!ahead || NEG_ITEM_START_STOP.has(ahead[1]!.toLowerCase()))) break;
        if (current.length) words.push(current.join(' '));
        current = [];
        pos = re.lastIndex;
        continue;
      }
      if (current.length === 0 && ['any', 'a', 'an', 'the', 'more', 'no', 'without', 'single'].includes(word)) {
        pos = re.lastIndex;
        last = pos;
        continue;
      }
      current.push(word);
      pos = re.lastIndex;
      last = pos;
    }
    if (current.length) words.push(current.join(' '));
    if (!words.length) continue;
    items.push(...words);
    spans.push({ start, end: last });
  }
  return { items, spans };
}

function removeSpans(text: string, spans: Span[]): string {
  let out = text;
  for (const s of [...spans].sort((a, b) => b.start - a.start)) out = out.slice(0, s.start) + ' ' + out.slice(s.end);
  return out
    .replace(/\s+([,.;:!?])/g, '$1')
    .replace(/([,;])\s*(?=[,;.]|$)/g, '')
    .replace(/\b(with|and|but|or)\s*(?=[,.;]|$)/gi, '')
    .replace(/\s{2,}/g, ' ')
    .replace(/^[\s,;]+|[\s,;]+$/g, '')
    .trim();
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const STYLE_NOUN_RE = [...STYLE_PHRASES, ...NEUTRAL_PICTURE_WORDS]
  .sort((a, b) => b.length - a.length)
  .map(escapeRe)
  .join('|');
const PREFIX_STYLE = new RegExp(
  `^(?:(?:an?|the)\\s+)?((?:[\\w'-]+\\s+){0,2}?)(${STYLE_NOUN_RE})\\s+(?:of|showing|depicting|featuring)\\s+`,
  'i',
);
const STYLE_WORD_RE = new RegExp(`\\b(?:${STYLE_WORDS.map(escapeRe).join('|')})\\b`, 'i');

function findStyle(text: string): { style?: string; body: string } {
  let body = text.trim();
  let style: string | undefined;
  const pre = PREFIX_STYLE.exec(body);
  if (pre && !(pre[1] ?? '').split(/\s+/).some((w) => NUMBER_WORDS[w.toLowerCase()] !== undefined)) {
    const noun = pre[2]!.toLowerCase();
    const adjs = (pre[1] ?? '').trim();
    if (!NEUTRAL_PICTURE_WORDS.has(noun)) style = withArticle(`${adjs ? `${adjs} ` : ''}${noun}`);
    else if (adjs && STYLE_WORD_RE.test(adjs)) style = `${adjs} style`;
    body = body.slice(pre[0].length);
  }
  const suffixOf = /,?\s+in\s+the\s+style\s+of\s+(.+)$/i.exec(body);
  if (suffixOf) {
    style = [style, `in the style of ${suffixOf[1]!.trim()}`].filter(Boolean).join(', ');
    body = body.slice(0, suffixOf.index);
  } else {
    const inStyle =
      /,?\s+(?:in|as)\s+(?:an?\s+|the\s+)?([\w' -]+?)\s+style$/i.exec(body) ??
      /,?\s+in\s+(pixel art|watercolou?r|oil|anime|cartoon|3d|pencil|charcoal|ink)$/i.exec(body);
    if (inStyle) {
      style = [style, `${inStyle[1]!.trim()} style`].filter(Boolean).join(', ');
      body = body.slice(0, inStyle.index);
    } else {
      const tail = /,\s*([^,]+)$/.exec(body);
      if (
        tail &&
        tail[1]!.trim().split(/\s+/).length <= 5 &&
        STYLE_WORD_RE.test(tail[1]!) &&
        !/\b(a|an|the|on|in|with)\b/i.test(tail[1]!)
      ) {
        style = [style, tail[1]!.trim()].filter(Boolean).join(', ');
        body = body.slice(0, tail.index);
      }
    }
  }
  return { style, body };
}

// ---------------------------------------------------------------------------------------------------------
// The grammar

/**
 * Counts [a, b] that satisfy a comparison: the smallest plural-looking ones that fit in `budget` boxes, or the
 * ones the text gave for b ("more cats than the two dogs").
 */
export function chooseCounts(
  rel: Comparison['rel'],
  k: number,
  diff: number,
  given: number | undefined,
  budget: number,
): [number, number] {
  const fits = (x: number, y: number) => x + y <= budget;
  switch (rel) {
    case 'more': {
      if (given !== undefined) return [given + diff, given];
      const y = fits(2 + diff, 2) ? 2 : 1;
      return [y + diff, y];
    }
    case 'fewer': {
      if (given !== undefined) return [Math.max(1, given - diff), Math.max(given, 1 + diff)];
      const x = fits(2, 2 + diff) ? 2 : 1;
      return [x, x + diff];
    }
    case 'equal': {
      if (given !== undefined) return [given, given];
      return fits(2, 2) ? [2, 2] : [1, 1];
    }
    case 'times': {
      if (k >= 1) {
        if (given !== undefined) return [Math.round(k * given), given];
        const y = fits(2 * k, 2) ? 2 : 1;
        return [Math.round(k * y), y];
      }
      const m = Math.round(1 / k);
      if (given !== undefined) return [Math.max(1, Math.round(given / m)), Math.max(given, m)];
      const x = fits(2, 2 * m) ? 2 : 1;
      return [x, x * m];
    }
  }
}

interface NounPhrase {
  /** Determiner, count or group words as written ("a", "three", "a flock of"). */
  prefix: string[];
  words: string[];
  head: string;
  count: number;
  counted: boolean;
  group: boolean;
  definite: boolean;
  groupPhrase?: string;
  pronoun?: 'it' | 'them';
  /** A count above the crowd threshold, as written ("a thousand"): drawn as one crowd region. */
  crowd?: string;
}

class Reader {
  pos = 0;
  readonly entities: Entity[] = [];
  readonly relations: Relation[] = [];
  readonly comparisons: Comparison[] = [];
  readonly settings: { prep: string; np: string }[] = [];
  order?: 'x' | 'y';
  private pendingH?: AnchorH;
  private pendingV?: AnchorV;
  private pendingDepth?: 'front' | 'back';
  /** Relations met before their subject ("Next to the tree, a dog"). */
  private pendingRelations: ((subject: number) => void)[] = [];
  private last?: Entity;
  private clauseEntities: Entity[] = [];
  /** Objects named since the last relation: "a cup and a bowl on a table" puts both on the table. */
  private unplaced: Entity[] = [];

  constructor(
    private readonly t: string[],
    private readonly maxCount: number,
  ) {}

  private peek(k = 0): string | undefined {
    return this.t[this.pos + k];
  }

  private is(...words: string[]): boolean {
    return words.every((w, i) => this.t[this.pos + i] === w);
  }

  private take(n = 1): void {
    this.pos += n;
  }

  private accept(...words: string[]): boolean {
    if (!this.is(...words)) return false;
    this.take(words.length);
    return true;
  }

  run(): void {
    let clauseStart = true;
    while (this.pos < this.t.length) {
      const w = this.peek()!;
      if (this.accept('from', 'left', 'to', 'right') || this.accept('left', 'to', 'right')) {
        this.order = 'x';
        continue;
      }
      if (this.accept('from', 'top', 'to', 'bottom') || this.accept('top', 'to', 'bottom')) {
        this.order = 'y';
        continue;
      }
      if (this.accept('in', 'a', 'row') || this.accept('in', 'a', 'line') || this.accept('side', 'by', 'side')) {
        this.order ??= 'x';
        continue;
      }
      if (
        this.accept('on', 'top', 'of', 'each', 'other') ||
        this.accept('stacked') ||
        this.accept('one', 'above', 'the', 'other')
      ) {
        this.order = 'y';
        continue;
      }
      if (this.frame()) {
        clauseStart = true;
        continue;
      }
      if (this.comparison() || this.outnumber()) {
        clauseStart = false;
        continue;
      }
      if (SEPARATORS.has(w)) {
        this.take();
        clauseStart = true;
        this.clauseEntities = [];
        continue;
      }
      if (w === 'with') {
        this.take();
        clauseStart = true;
        continue;
      }
      // "over 100 birds", "about twenty people": an approximate number, not a relation.
      if (['over', 'under', 'about', 'around', 'nearly', 'almost'].includes(w) && this.numberAt(1)) {
        this.take();
        clauseStart = true;
        continue;
      }
      if (this.is('at', 'least') || this.is('at', 'most')) {
        this.take(2);
        clauseStart = true;
        continue;
      }
      if (RELATION_START.has(w) || ((w === 'left' || w === 'right') && this.peek(1) === 'of')) {
        if (this.relation()) continue;
        this.take();
        continue;
      }
      if (SKIP.has(w) && !(DETERMINERS.has(w) && clauseStart)) {
        this.take();
        continue;
      }
      if (!clauseStart && !DETERMINERS.has(w) && NUMBER_WORDS[w] === undefined && !/^\d+$/.test(w)) {
        // A verb or adverb between an object and what follows ("a cat sleeps on a mat"): not an object.
        this.take();
        continue;
      }
      const np = this.nounPhrase();
      if (!np) {
        this.take();
        continue;
      }
      // "…, the cow on the left": a definite noun phrase naming an object already there is that object.
      const known =
        np.definite && !np.counted && !np.group
          ? [...this.entities].reverse().find((e) => e.head === np.head)
          : undefined;
      if (known) this.resume(known);
      else this.introduce(np);
      clauseStart = false;
    }
  }

  /** Skips words that frame the picture: "close up of", "a picture of", "an image of". */
  private frame(): boolean {
    const start = this.pos;
    const article = this.accept('a') || this.accept('an') || this.accept('the') || this.accept('this');
    this.accept('extreme');
    if (this.accept('close', 'up') || this.accept('close', 'ups')) {
      for (const w of ['view', 'shot', 'photo', 'image', 'picture']) if (this.accept(w)) break;
      if (this.accept('of')) return true;
    }
    const w = this.peek();
    if (w && FRAME_NOUNS.has(w) && this.peek(1) === 'of' && (article || this.pos === 0)) {
      this.take(2);
      return true;
    }
    this.pos = start;
    return false;
  }

  /** A number at `k` tokens ahead ("three", "3", "twenty-one", "a thousand"), with how many tokens it spans. */
  private numberAt(k: number): { n: number; len: number } | undefined {
    let n = countWord(this.peek(k));
    let len = 1;
    if (n === undefined && (this.peek(k) === 'a' || this.peek(k) === 'one') && MULTIPLIERS[this.peek(k + 1) ?? ''])
      n = 1;
    if (n === undefined) return undefined;
    while (MULTIPLIERS[this.peek(k + len) ?? '']) n *= MULTIPLIERS[this.peek(k + len++)!]!;
    return { n, len };
  }

  /** Boxes named so far (a group is one). */
  private boxes(): number {
    return this.entities.reduce((n, e) => n + (e.group ? 1 : e.count), 0);
  }

  /**
   * Comparisons of counts: "more cars than trucks", "three fewer cats than dogs", "as many cups as plates",
   * "twice as many birds as cats", "the same number of X and Y", and the elliptic "a few cars and more trucks".
   * Chooses the smallest counts that satisfy the relation and fit in the region limit.
   */
  private comparison(): boolean {
    const start = this.pos;
    const fail = () => {
      this.pos = start;
      return false;
    };
    let k = 1;
    let diff: number | undefined;
    if (this.accept('twice') || this.accept('double')) k = 2;
    else if (this.accept('triple') || this.accept('thrice')) k = 3;
    else if (this.accept('half')) k = 0.5;
    else if (this.accept('a', 'few') || this.accept('a', 'couple') || this.accept('a', 'couple', 'of')) diff = 2;
    else if (this.accept('many') || this.accept('far') || this.accept('much') || this.accept('a', 'lot')) diff = 3;
    else if (this.accept('slightly') || this.accept('a', 'little') || this.accept('a', 'bit') || this.accept('just'))
      diff = 1;
    else {
      const num = this.numberAt(0);
      if (num) {
        this.take(num.len);
        if (this.accept('times')) k = num.n;
        else diff = num.n;
      }
    }
    let rel: Comparison['rel'];
    if (this.accept('as', 'many') || this.accept('as', 'much')) rel = k === 1 ? 'equal' : 'times';
    else if (
      this.accept('the', 'same', 'number', 'of') ||
      this.accept('the', 'same', 'amount', 'of') ||
      this.accept('an', 'equal', 'number', 'of') ||
      this.accept('equal', 'numbers', 'of') ||
      this.accept('equal', 'number', 'of') ||
      (k !== 1 && (this.accept('the', 'number', 'of') || this.accept('the', 'amount', 'of')))
    )
      rel = k === 1 ? 'equal' : 'times';
    else if (this.accept('more')) rel = k === 1 ? 'more' : 'times';
    else if (this.accept('fewer') || this.accept('less')) rel = k === 1 ? 'fewer' : 'times';
    else return fail();
    if (rel === 'times' && this.t[this.pos - 1] === 'fewer') k = 1 / k;
    // "more than three cats" is a quantity, read by the noun phrase.
    if (this.is('than') || (this.peek() && !/^[\p{L}]/u.test(this.peek()!))) return fail();
    const prev = [...this.entities].reverse().find((e) => !e.group);
    const np1 = this.nounPhrase(true);
    if (!np1 || np1.group || np1.pronoun) return fail();
    let np2: NounPhrase | undefined;
    const joined =
      this.accept('than') || this.accept('as') || (rel === 'equal' && (this.accept('and') || this.accept('to')));
    if (joined) {
      if (!this.accept('there', 'are') && !this.accept('there', 'is')) this.accept('of');
      np2 = this.nounPhrase(true);
      if (!np2 || np2.pronoun || np2.group) return fail();
    } else if (!prev) return fail();
    const e1 = this.introduce({ ...np1, counted: false });
    const e2 = np2 ? this.refer(np2, true)[0] : prev;
    if (!e2 || e2 === e1) return true;
    const given = np2?.counted ? np2.count : prev && !np2 && prev.counted ? prev.count : undefined;
    const [x, y] = chooseCounts(
      rel,
      k,
      diff ?? 1,
      given,
      Math.max(2, this.maxCount - (this.boxes() - e1.count - e2.count)),
    );
    e1.count = x;
    e2.count = y;
    for (const e of [e1, e2]) if (e.count > this.crowdAt(e.head)) this.crowdify(e, String(e.count));
    this.comparisons.push({
      a: e1.index,
      b: e2.index,
      rel,
      diff: diff ?? 1,
      ...(rel === 'times' ? { k } : {}),
      ...(given !== undefined ? { given } : {}),
    });
    return true;
  }

  /** "cats outnumber dogs", "dogs are outnumbered by cats": a comparison stated with a verb. */
  private outnumber(): boolean {
    const w = this.peek();
    const subject = this.last;
    if (!subject || subject.group || !w || !/^outnumber(s|ed|ing)?$/.test(w)) return false;
    const start = this.pos;
    this.take();
    const passive = w === 'outnumbered' && this.accept('by');
    const np = this.nounPhrase(true);
    if (!np || np.group || np.pronoun) {
      this.pos = start;
      return false;
    }
    const other = this.refer(np, true)[0]!;
    const [x, y] = chooseCounts(
      'more',
      1,
      1,
      np.counted ? np.count : undefined,
      Math.max(2, this.maxCount - (this.boxes() - subject.count - other.count)),
    );
    const [more, fewer] = passive ? [other, subject] : [subject, other];
    more.count = x;
    fewer.count = y;
    this.comparisons.push({ a: more.index, b: fewer.index, rel: 'more', diff: 1 });
    return true;
  }

  /** Above this count a kind is drawn as one crowd region. */
  private crowdAt(head: string): number {
    return Math.min(this.maxCount, CROWDS[head]?.above ?? Infinity);
  }

  /** Turns a counted object into one crowd region whose prompt keeps the number: "a flock of a thousand birds". */
  private crowdify(e: Entity, written: string): void {
    const noun = CROWDS[e.head]?.noun ?? 'group';
    const words = stripArticle(e.label).split(' ');
    const last = words.length - 1 - [...words].reverse().findIndex((w) => singularize(w) === e.head);
    if (last < words.length) words[last] = pluralize(words[last]!);
    e.crowd = { count: e.count, written, noun };
    e.group = true;
    e.label = withArticle(`${noun} of ${words.join(' ')}`);
    e.count = 1;
  }

  /** Makes an object the subject: pending places and relations apply to it, then its own words follow. */
  private resume(e: Entity): void {
    if (this.pendingH) e.anchorH = this.pendingH;
    if (this.pendingV) e.anchorV = this.pendingV;
    if (this.pendingDepth) e.depth = this.pendingDepth;
    this.pendingH = this.pendingV = this.pendingDepth = undefined;
    for (const apply of this.pendingRelations.splice(0)) apply(e.index);
    this.last = e;
    this.clauseEntities.push(e);
    this.attachments(e);
  }

  private introduce(np: NounPhrase): Entity {
    const e = this.makeEntity(np);
    this.unplaced.push(e);
    this.resume(e);
    return e;
  }

  private makeEntity(np: NounPhrase): Entity {
    const e: Entity = {
      index: this.entities.length,
      head: np.head,
      label: withArticle(np.words.join(' ').replace(/ ,/g, ',')),
      count: np.count,
      counted: np.counted,
      group: np.group,
    };
    if (np.group) e.label = np.groupPhrase ?? e.label;
    if (np.crowd) this.crowdify(e, np.crowd);
    this.entities.push(e);
    return e;
  }

  /**
   * What follows an object and belongs to it: relative clauses ("that is …", "who is …", "which …"), participle
   * phrases ("looking at a dog", "riding a horse"), passives ("being cut by a man") and "with <accessory>".
   * A verb's object that is a thing gets its own box; the activity goes into the object's prompt.
   */
  private attachments(e: Entity): void {
    for (;;) {
      const w = this.peek();
      if (!w) return;
      if (PLACED_WORDS.has(w)) {
        this.take();
        continue;
      }
      if (this.predicate(e)) continue;
      // "that is", "who are", "which has been", "is being": the clause goes on with what the object does.
      if (w === 'that' || w === 'who' || w === 'which' || (AUX.has(w) && this.clauseGoesOn(1))) {
        let k = 1;
        while (this.peek(k) && AUX.has(this.peek(k)!)) k++;
        if (k > 1 || AUX.has(w)) {
          this.take(k);
          continue;
        }
        // "a cat which sleeps on a mat": a finite verb after the pronoun.
        const v = this.peek(1);
        if (v && !DETERMINERS.has(v) && !NP_BOUNDARY.has(v) && /s$/.test(v) && !knownSize(singularize(v))) {
          this.take();
          this.verbPhrase(e);
          continue;
        }
        return;
      }
      if (w === 'held' && this.peek(1) === 'by') {
        // "a balloon held by a girl": the holder is an object of its own, the balloon at its hand.
        const save = this.pos;
        this.take(2);
        const np = this.nounPhrase();
        const holder = np ? this.refer(np, true)[0] : undefined;
        if (holder && holder.index !== e.index) {
          this.relations.push({ kind: 'held', a: e.index, b: holder.index });
          this.addAction(e, `held by ${holder.label}`);
          continue;
        }
        this.pos = save;
        return;
      }
      if ((PAST_PARTICIPLES.has(w) || /ed$/.test(w)) && this.peek(1) === 'by') {
        // A passive: "a pizza cut by a man", "a kite flown by a boy": the agent is an object of its own.
        const save = this.pos;
        this.take(2);
        const np = this.nounPhrase();
        const agent = np && !np.pronoun ? this.refer(np, true)[0] : undefined;
        if (agent && agent.index !== e.index) {
          this.relations.push({ kind: 'next', a: e.index, b: agent.index });
          this.addAction(e, `${w} by ${agent.label}`);
          continue;
        }
        this.pos = save;
        return;
      }
      if (verbish(w) && !RELATION_START.has(w)) {
        this.verbPhrase(e);
        continue;
      }
      if (w === 'with') {
        const save = this.pos;
        this.take();
        const np = this.nounPhrase(true);
        if (
          np &&
          !np.group &&
          isAttachment(np.head) &&
          np.count <= 2 &&
          !PLACES.has(e.head) &&
          !NEUTRAL_PICTURE_WORDS.has(e.head)
        ) {
          const words =
            np.count > 1 || isPluralNoun(np.words[np.words.length - 1]!)
              ? [...np.prefix, ...np.words]
              : np.prefix.length
                ? [...np.prefix, ...np.words]
                : np.words;
          // "with sprinkles" keeps its plural (the phrase's head was singularised for matching).
          const shown = np.count > 1 && !np.counted ? words.map((w) => (w === np.head ? pluralize(w) : w)) : words;
          if (!e.group) e.label = `${e.label} with ${shown.join(' ')}`;
          continue;
        }
        this.pos = save;
        return;
      }
      return;
    }
  }

  /** After an auxiliary: does a participle, a passive or "being" follow ("is sitting", "are being")? */
  private clauseGoesOn(k: number): boolean {
    const v = this.peek(k);
    return !!v && (v === 'being' || (verbish(v) && !RELATION_START.has(v)) || PAST_PARTICIPLES.has(v));
  }

  private addAction(e: Entity, words: string): void {
    e.action = e.action ? `${e.action} ${words}` : words;
  }

  /**
   * A participle and what it governs: "riding a horse" (the horse gets a box, under the rider), "holding a red
   * balloon" (at the hand), "looking at a dog" (the dog via the relation that follows), "taking a nap" (no box).
   * The words, up to the next clause, become the object's action.
   */
  private verbPhrase(e: Entity): void {
    const start = this.pos;
    const verb = this.peek()!;
    this.take();
    while (this.peek() && (PARTICLES.has(this.peek()!) || (/ly$/.test(this.peek()!) && this.peek()!.length > 4)))
      this.take();
    let end = this.pos;
    const next = this.peek();
    if (next && !NP_BOUNDARY.has(next) && !verbish(next) && !PAST_PARTICIPLES.has(next)) {
      const save = this.pos;
      const np = this.nounPhrase();
      if (!np) this.pos = save;
      else if (!np.pronoun) {
        end = this.pos;
        if (PLACES.has(np.head) || PLACES.has(np.words.join(' ')) || SKY_WORDS.has(np.head)) {
          const bare = np.words.length === 1 && MASS_PLACES.has(np.head);
          const phrase = np.definite ? `the ${np.words.join(' ')}` : bare ? np.head : withArticle(np.words.join(' '));
          this.settings.push({ prep: '', np: phrase });
        } else if (
          !isAttachment(np.head) ||
          HOLDABLE.has(np.head) ||
          (knownSize(np.head) && !WORN_VERBS.has(verb) && (np.count === 1 || np.counted))
        ) {
          const o = this.refer(np, true)[0];
          if (o && o.index !== e.index) {
            if (HOLD_VERBS.has(verb)) this.relations.push({ kind: 'held', a: o.index, b: e.index });
            else this.relations.push({ kind: RIDE_VERBS.has(verb) ? 'on' : 'next', a: e.index, b: o.index });
          }
        }
      }
    }
    // The action's words run on to the end of the clause (a relation to the verb's object included).
    let stop = end;
    while (
      stop < this.t.length &&
      stop - start < 14 &&
      !ACTION_STOP.has(this.t[stop]!) &&
      !(this.t[stop] === 'in' && this.t[stop + 1] === 'front') &&
      !(stop > start && verbish(this.t[stop]!) && !RELATION_START.has(this.t[stop]!))
    )
      stop++;
    this.addAction(e, this.t.slice(start, stop).join(' '));
  }

  /**
   * "a car that is red", "a cat which is black and white", "a vase coloured blue": adjectives said after the
   * noun bind to it like the ones before it.
   */
  private predicate(e: Entity): boolean {
    const start = this.pos;
    const w = this.peek();
    let k: number;
    if (
      (w === 'that' || w === 'which' || w === 'who') &&
      (this.peek(1) === 'is' || this.peek(1) === 'are' || this.peek(1) === 'looks' || this.peek(1) === 'look')
    )
      k = 2;
    else if (
      w === 'colored' ||
      w === 'coloured' ||
      w === 'painted' ||
      w === 'in' ||
      w === 'is' ||
      w === 'are' ||
      w === 'looks'
    )
      k = 1;
    else return false;
    const adjs: string[] = [];
    let i = k;
    while (this.peek(i) !== undefined) {
      const x = this.peek(i)!;
      if (ADJECTIVES.has(x) || COLOURS.has(x)) adjs.push(x);
      else if (!(
        x === 'and' &&
        adjs.length &&
        this.peek(i + 1) &&
        (ADJECTIVES.has(this.peek(i + 1)!) || COLOURS.has(this.peek(i + 1)!))
      ))
        break;
      else adjs.push(x);
      i++;
    }
    // "in red" only for colours ("a woman in red"), never "in front" or "in a box".
    if (!adjs.length || (w === 'in' && !adjs.every((a) => a === 'and' || COLOURS.has(a)))) {
      this.pos = start;
      return false;
    }
    this.take(i);
    if (!e.group) e.label = withArticle(`${adjs.join(' ')} ${stripArticle(e.label)}`);
    return true;
  }

  /** Reads [determiner|count] words... up to a boundary. Singularises the head of counted plurals. */
  private nounPhrase(noPronoun = false): NounPhrase | undefined {
    const start = this.pos;
    let count: number | undefined;
    let group = false;
    let definite = false;
    let exact = false;
    let written: string | undefined;
    const w0 = this.peek();
    if (!w0) return undefined;
    if (!noPronoun && (w0 === 'it' || w0 === 'them' || (w0 === 'each' && this.peek(1) === 'other'))) {
      this.take(w0 === 'each' ? 2 : 1);
      return {
        prefix: [],
        words: [],
        head: '',
        count: 0,
        counted: false,
        group: false,
        definite: true,
        pronoun: w0 === 'it' ? 'it' : 'them',
      };
    }
    // "more than three", "fewer than 5", "at least two" (the run loop dropped "at least"), "exactly four".
    let adjust = 0;
    if ((w0 === 'more' || w0 === 'over') && this.peek(1) === 'than' && this.numberAt(2)) [adjust] = [1, this.take(2)];
    else if ((w0 === 'fewer' || w0 === 'less') && this.peek(1) === 'than' && this.numberAt(2))
      [adjust] = [-1, this.take(2)];
    else if (['exactly', 'only', 'just', 'least', 'about', 'around', 'roughly', 'approximately'].includes(w0))
      if (this.numberAt(1)) this.take();
    const q = this.peek()!;
    const number = this.numberAt(0);
    if (number && !(number.n === 1 && q === 'a' && number.len === 1)) {
      // "3", "twenty-one", "three thousand", "a thousand", "one hundred"
      written = this.t.slice(this.pos, this.pos + number.len).join(' ');
      this.take(number.len);
      [count, exact] = [Math.max(1, number.n + adjust), q !== 'few' && q !== 'several'];
      if (adjust) written = `${adjust > 0 ? 'more' : 'fewer'} than ${written}`;
      this.accept('of');
    } else if (q === 'a' || q === 'an') {
      this.take();
      if (this.accept('few')) count = 3;
      else if (this.accept('couple', 'of') || this.accept('couple') || this.accept('pair', 'of'))
        [count, exact] = [2, true];
      else if (this.accept('dozen')) [count, exact, written] = [12, true, 'a dozen'];
      else if (this.accept('number', 'of') || this.accept('handful', 'of') || this.accept('few', 'of')) count = 3;
      else if (this.peek() && GROUP_WORDS.has(this.peek()!) && this.peek(1) === 'of') {
        // "a group of three cats" is counted: three boxes; "a group of cats" is one crowd.
        const n = countWord(this.peek(2));
        this.take(2);
        if (n !== undefined) {
          [count, exact] = [n, true];
          this.take();
        } else group = true;
      } else count = 1;
      this.accept('of');
    } else if (
      q === 'the' ||
      q === 'this' ||
      q === 'that' ||
      ['his', 'her', 'their', 'my', 'your', 'our', 'its'].includes(q)
    ) {
      this.take();
      definite = true;
      const n = this.numberAt(0);
      if (n) {
        [count, exact, written] = [n.n, true, this.t.slice(this.pos, this.pos + n.len).join(' ')];
        this.take(n.len);
      }
    } else if (q === 'some' || q === 'several' || q === 'few') {
      count = q === 'some' ? 2 : 3;
      this.take();
    } else if (q === 'both') {
      [count, exact] = [2, true];
      this.take();
      this.accept('of');
      this.accept('the');
    } else if (GROUP_WORDS.has(q)) {
      this.take();
      this.accept('of');
      const n = countWord(this.peek());
      if (n !== undefined) {
        [count, exact] = [n, true];
        this.take();
      } else group = true;
    }
    const words: string[] = [];
    while (this.peek() !== undefined) {
      const w = this.peek()!;
      if (w === 'of' && words.length) {
        // "a glass of lemonade", "a pair of shoes": the phrase goes on; "left of" never gets here.
        words.push(w);
        this.take();
        if (this.peek() && DETERMINERS.has(this.peek()!)) {
          words.push(this.peek()!);
          this.take();
        }
        continue;
      }
      // "a black and white cat", "a brown, black, and white cat": adjectives joined by "and" or commas before
      // one noun describe that noun.
      const describing = (x: string | undefined) => !!x && (ADJECTIVES.has(x) || COLOURS.has(x));
      if (
        w === ',' &&
        words.length &&
        words.every((x) => describing(x) || x === ',') &&
        (describing(this.peek(1)) || (this.peek(1) === 'and' && describing(this.peek(2))))
      ) {
        words.push(w);
        this.take();
        continue;
      }
      if (
        w === 'and' &&
        words.length &&
        words.every((x) => describing(x) || x === ',') &&
        this.peek(1) &&
        (ADJECTIVES.has(this.peek(1)!) || COLOURS.has(this.peek(1)!)) &&
        this.peek(2) &&
        !NP_BOUNDARY.has(this.peek(2)!)
      ) {
        words.push(w);
        this.take();
        continue;
      }
      if (NP_BOUNDARY.has(w) && !(w === 'left' || w === 'right')) break;
      if (w === 'held' && this.peek(1) === 'by') break;
      // "a pizza being cut by a man", "a kite flown by a boy": the passive belongs to the attachments.
      if (words.length && (w === 'being' || ((PAST_PARTICIPLES.has(w) || /ed$/.test(w)) && this.peek(1) === 'by')))
        break;
      if (words.length && (w === 'there' || PLACED_WORDS.has(w))) break;
      if ((w === 'left' || w === 'right') && (this.peek(1) === 'of' || this.peek(1) === 'side' || words.length)) break;
      if (SEPARATORS.has(w) || w === ',') break;
      const prev = words[words.length - 1];
      if (
        words.length &&
        (PARTICIPLES.has(w) || (w.endsWith('ing') && w.length > 5)) &&
        !(prev && ADJECTIVES.has(prev) && this.peek(1) && !NP_BOUNDARY.has(this.peek(1)!))
      )
        break;
      if (words.length && /ly$/.test(w) && w.length > 4) break;
      // "a giraffe lined up", "a kite high up above…": what follows the noun is no longer its name.
      // "bananas ready to be sold", "cars more than…": a predicate or a comparison after the noun.
      if (
        words.length &&
        prev !== ',' &&
        prev !== 'and' &&
        !describing(prev) &&
        !knownSize(w) &&
        (ADJECTIVES.has(w) || COLOURS.has(w) || NOT_OBJECTS.has(w)) &&
        (this.peek(1) === undefined || this.peek(1) === 'to' || NP_BOUNDARY.has(this.peek(1)!))
      )
        break;
      if (words.length && DETERMINERS.has(w) && words[words.length - 1] !== 'of') break;
      if (words.length && (w === 'than' || (QUANTITY_WORDS.has(w) && !knownSize(w)))) break;
      if (words.length && (PARTICLES.has(w) || /^outnumber/.test(w) || (verbish(w) && !ADJECTIVES.has(prev ?? ''))))
        break;
      if (NUMBER_WORDS[w] !== undefined && words.length) break;
      // "a cat sleeps on a mat": after a singular determiner, a plural-looking word that follows a noun is a verb.
      if (
        words.length &&
        (count === 1 || (definite && count === undefined && !knownSize(singularize(w)))) &&
        isPluralNoun(w) &&
        prev &&
        prev !== 'of' &&
        !DETERMINERS.has(prev) &&
        !ADJECTIVES.has(prev) &&
        !ATTACHMENTS.has(w)
      )
        break;
      words.push(w);
      this.take();
    }
    if (!words.length || (words.length === 1 && (DETERMINERS.has(words[0]!) || SKIP.has(words[0]!)))) {
      this.pos = start;
      return undefined;
    }
    const ofAt = words.indexOf('of');
    const headIndex = ofAt > 0 ? ofAt - 1 : words.length - 1;
    const rawHead = words[headIndex]!;
    const head = singularize(rawHead);
    // Verbs, quantities, adjectives and abstract nouns never name a thing to box ("a nap", "a be sold", "a
    // thousand", "a beautiful"); a word the size table knows is a thing ("an orange", "a painting").
    const known = knownSize(head) !== undefined || knownSize(rawHead) !== undefined;
    if (
      !known &&
      (NOT_OBJECTS.has(rawHead) ||
        QUANTITY_WORDS.has(rawHead) ||
        words.every((x) => ADJECTIVES.has(x) || COLOURS.has(x) || x === ',' || x === 'and') ||
        verbish(rawHead) ||
        PAST_PARTICIPLES.has(rawHead) ||
        (/ed$/.test(rawHead) && rawHead.length > 4) ||
        /^\d/.test(rawHead))
    ) {
      this.pos = start;
      return undefined;
    }
    const counted = exact && count !== undefined && count > 1;
    const plural = isPluralNoun(rawHead);
    if (count === undefined && !group) count = plural ? 2 : 1;
    const crowd = !group && count !== undefined && count > this.crowdAt(head) ? (written ?? String(count)) : undefined;
    const prefix = this.t.slice(start, this.pos - words.length);
    // "hundreds of people", "countless stars": a crowd without a number; its prompt keeps the words.
    const many = prefix.filter((w) => w !== 'of');
    if (group && many.length === 1 && QUANTITY_WORDS.has(many[0]!) && plural) {
      const shown = [...words];
      shown[headIndex] = head;
      return { prefix, words: shown, head, count: 0, counted: false, group: false, definite, crowd: prefix.join(' ') };
    }
    if (group) {
      const phrase = [...prefix, ...words].join(' ');
      return {
        prefix,
        words,
        head,
        count: 1,
        counted: false,
        group: true,
        definite,
        groupPhrase: /^(a|an)\s/.test(phrase) ? withArticle(phrase) : phrase,
      };
    }
    const shownWords = [...words];
    shownWords[headIndex] = head;
    return {
      prefix,
      words: shownWords,
      head,
      count: count ?? 1,
      counted: counted && !crowd,
      group: false,
      definite,
      ...(crowd ? { crowd } : {}),
    };
  }

  /** Finds an entity named earlier ("the dog") or introduces it ("next to a dog"). */
  private refer(np: NounPhrase, introduce: boolean): Entity[] {
    if (np.pronoun === 'it') {
      // "a tree with a bird on top of it": "it" is the thing before the one being placed.
      const s = this.subject();
      const prior = this.entities.filter((e) => e !== s && !(e.index > (s?.index ?? -1) && s));
      return this.last && this.last !== s ? [this.last] : prior.length ? [prior[prior.length - 1]!] : [];
    }
    if (np.pronoun === 'them') {
      // "them" points back past the object being placed: "two cats and a ball between them" means the cats.
      const s = this.subject();
      const prior = this.entities.filter((e) => e !== s);
      const plural = [...prior].reverse().find((e) => e.count >= 2);
      return plural ? [plural] : prior.slice(-2);
    }
    const found = [...this.entities].reverse().find((e) => e.head === np.head);
    if (found && (np.definite || !introduce)) return [found];
    if (!introduce) return [];
    const before = this.last;
    const e = this.makeEntity(np);
    this.attachments(e);
    this.last = before;
    return [e];
  }

  /** The object a relation talks about: the last one named in this clause. */
  private subject(): Entity | undefined {
    return this.clauseEntities[this.clauseEntities.length - 1];
  }

  /** Consumes "the image", "the picture", "the frame"… (the picture itself, never an object). */
  private pictureWord(): boolean {
    const start = this.pos;
    if (!this.accept('the') && !this.accept('this')) this.accept('our');
    const w = this.peek();
    if (w && PICTURE_NOUNS.has(w)) {
      this.take();
      return true;
    }
    this.pos = start;
    return false;
  }

  /** Applies an absolute position to the current object, or to the next one named ("On the left, a cat"). */
  private anchor(h?: AnchorH, v?: AnchorV, depth?: 'front' | 'back'): void {
    const s = this.clauseEntities[this.clauseEntities.length - 1];
    if (s) {
      if (h) s.anchorH = h;
      if (v) s.anchorV = v;
      if (depth) s.depth = depth;
      return;
    }
    if (h) this.pendingH = h;
    if (v) this.pendingV = v;
    if (depth) this.pendingDepth = depth;
  }

  private relationTo(build: (s: number, o: number) => Relation | undefined, introduce = true): boolean {
    const np = this.nounPhrase();
    if (!np) return false;
    const objects = this.refer(np, introduce);
    const add = (s: number) => {
      for (const o of objects) {
        if (o.index === s) continue;
        const r = build(s, o.index);
        if (r) this.relations.push(r);
      }
    };
    const s = this.subject();
    if (s) add(s.index);
    else this.pendingRelations.push(add);
    return true;
  }

  private side(): AnchorH | undefined {
    if (this.accept('left')) return 'left';
    if (this.accept('right')) return 'right';
    return undefined;
  }

  private relation(): boolean {
    const start = this.pos;
    // A part of a thing as a support: "on the back of a motorcycle", "in the bed of a truck", "at the end of
    // a table". The thing gets a box; a place keeps the phrase as the setting ("on the side of the road").
    for (const prep of ['on', 'in', 'at', 'inside', 'from']) {
      if (!this.is(prep)) continue;
      const det = this.peek(1);
      const part = this.peek(2);
      if (
        det &&
        ['the', 'a', 'an', 'its', 'his', 'her', 'their'].includes(det) &&
        part &&
        SUPPORT_PARTS.has(part) &&
        this.peek(3) === 'of' &&
        !PICTURE_NOUNS.has(
          this.peek(4) === 'the' || this.peek(4) === 'this' ? (this.peek(5) ?? '') : (this.peek(4) ?? ''),
        )
      ) {
        const save = this.pos;
        this.take(4);
        const probe = this.nounPhrase();
        this.pos = save + 4;
        if (!probe || probe.pronoun || PLACES.has(probe.head) || SKY_WORDS.has(probe.head)) {
          if (['middle', 'center', 'centre', 'top', 'bottom', 'corner', 'edge', 'side', 'front'].includes(part)) {
            this.pos = start;
            break;
          }
        }
        return this.placeOn(prep === 'from' ? 'on' : prep === 'at' ? 'on' : prep, part);
      }
    }
    // "on the left (side) (of X)", "to the right of X", "at the left", "on its left"
    if (
      (this.accept('on') || this.accept('to') || this.accept('at')) &&
      (this.accept('the') || this.accept('its') || this.accept('their') || true)
    ) {
      const h = this.side();
      if (h) {
        this.accept('side');
        this.accept('hand', 'side');
        if (this.accept('of')) {
          // "on the left of the image" is a place in the picture, not a relation to an object.
          if (this.pictureWord()) {
            this.anchor(h);
            return true;
          }
          const ok = this.relationTo((s, o) =>
            h === 'left' ? { kind: 'left', a: s, b: o } : { kind: 'left', a: o, b: s },
          );
          if (ok) return true;
        }
        this.anchor(h);
        return true;
      }
      this.pos = start;
    }
    if (this.is('left', 'of') || this.is('right', 'of')) {
      const h = this.peek() as AnchorH;
      this.take(2);
      return this.relationTo((s, o) => (h === 'left' ? { kind: 'left', a: s, b: o } : { kind: 'left', a: o, b: s }));
    }
    // corners, edges and the middle
    if (this.accept('in', 'the') || this.accept('at', 'the') || this.accept('on', 'the')) {
      let v: AnchorV | undefined;
      if (this.accept('top') || this.accept('upper')) v = 'top';
      else if (this.accept('bottom') || this.accept('lower')) v = 'bottom';
      if (v) {
        const h = this.side();
        const corner = this.accept('corner') || this.accept('corners');
        if (!h && corner) this.anchor('right', v);
        else this.anchor(h, v);
        for (const w of ['half', 'part', 'side', 'edge']) if (this.accept(w)) break;
        if (this.accept('of')) this.nounPhrase();
        return true;
      }
      if (this.accept('corner')) {
        this.anchor('right', 'bottom');
        return true;
      }
      if (this.accept('middle') || this.accept('center') || this.accept('centre')) {
        this.anchor('center', 'middle');
        if (this.accept('of')) {
          const np = this.nounPhrase(true);
          if (np) this.settings.push({ prep: 'in', np: withArticle(np.words.join(' ')) });
        }
        return true;
      }
      if (this.accept('background')) {
        this.anchor(undefined, undefined, 'back');
        return true;
      }
      if (this.accept('foreground') || this.accept('front')) {
        if (this.accept('of')) {
          return this.relationTo((s, o) => ({ kind: 'front', a: s, b: o }));
        }
        this.anchor(undefined, undefined, 'front');
        return true;
      }
      this.pos = start;
    }
    if (this.accept('in', 'front', 'of')) return this.relationTo((s, o) => ({ kind: 'front', a: s, b: o }));
    if (this.accept('on', 'top', 'of') || this.accept('atop') || this.accept('upon')) {
      return this.placeOn('on top of');
    }
    if (this.accept('on', 'top') || this.accept('at', 'top')) {
      this.anchor(undefined, 'top');
      return true;
    }
    if (
      this.accept('next', 'to') ||
      this.accept('beside') ||
      this.accept('besides') ||
      this.accept('alongside') ||
      this.accept('close', 'to') ||
      this.accept('near') ||
      this.accept('by') ||
      this.accept('facing') ||
      this.accept('opposite')
    ) {
      return this.relationTo((s, o) => ({ kind: 'next', a: s, b: o }));
    }
    if (this.accept('between') || this.accept('among') || this.accept('amid')) {
      const first = this.nounPhrase();
      if (!first) return true;
      const a = this.refer(first, true);
      let objects = a;
      if (this.accept('and')) {
        const second = this.nounPhrase();
        if (second) objects = [...a, ...this.refer(second, true)];
      }
      const [b, c] = objects;
      const add = (a: number) => {
        if (b && c) this.relations.push({ kind: 'between', a, b: b.index, c: c.index });
        else if (b) this.relations.push({ kind: 'between', a, b: b.index });
      };
      const s = this.subject();
      if (s) add(s.index);
      else this.pendingRelations.push(add);
      return true;
    }
    if (this.accept('above') || this.accept('over')) return this.relationTo((s, o) => ({ kind: 'above', a: s, b: o }));
    if (this.accept('below')) return this.relationTo((s, o) => ({ kind: 'above', a: o, b: s }));
    if (this.accept('under') || this.accept('beneath') || this.accept('underneath'))
      return this.relationTo((s, o) => ({ kind: 'under', a: s, b: o }));
    if (this.accept('behind')) return this.relationTo((s, o) => ({ kind: 'behind', a: s, b: o }));
    for (const prep of [
      'on',
      'in',
      'at',
      'inside',
      'into',
      'onto',
      'within',
      'across',
      'along',
      'around',
      'against',
      'through',
      'during',
      'from',
      'outside',
    ]) {
      if (this.accept(prep)) return this.placeOn(prep);
    }
    return false;
  }

  /**
   * "on/in/at X". X named before, or a thing (not a place) → the subject rests on it or sits inside it, both
   * boxed; clothing after "in" belongs to the subject's label ("a woman in a red dress"); otherwise X is a
   * place, surface or time (background).
   */
  private placeOn(prep: string, part?: string): boolean {
    const np = this.nounPhrase();
    if (!np) return true;
    // "in the image", "in this picture": the picture itself.
    if (np.definite && PICTURE_NOUNS.has(np.head) && np.words.length === 1) return true;
    if (np.pronoun) {
      const s = this.subject();
      const kind = ['in', 'inside', 'into', 'within'].includes(prep)
        ? 'inside'
        : ['on', 'onto', 'upon', 'atop', 'on top of'].includes(prep)
          ? 'on'
          : 'next';
      for (const o of this.refer(np, false))
        if (s && o.index !== s.index) this.relations.push({ kind, a: s.index, b: o.index });
      return true;
    }
    const contact: 'on' | 'inside' | 'next' = ['on', 'onto', 'upon', 'atop', 'on top of'].includes(prep)
      ? 'on'
      : ['in', 'inside', 'into', 'within'].includes(prep)
        ? 'inside'
        : 'next';
    const existing = [...this.entities].reverse().find((e) => e.head === np.head);
    const s = this.subject();
    if (existing && s && existing.index !== s.index) {
      this.relations.push({ kind: contact, a: s.index, b: existing.index });
      return true;
    }
    if (prep === 'in' && s && isAttachment(np.head) && !np.group) {
      if (!s.group) s.label = `${s.label} in ${[...np.prefix, ...np.words].join(' ')}`;
      return true;
    }
    if (SKY_WORDS.has(np.head)) this.anchor(undefined, 'top');
    // "looking at a dog", "talking to a man": a thing met with "at" or "to" stands beside the subject.
    const beside = prep === 'at' || prep === 'to' || prep === 'towards' || prep === 'toward' || prep === 'from';
    // "on a leash", "in a wetsuit" after an action: worn or attached, already in the action's words.
    if (isAttachment(np.head) && !knownSize(np.head) && this.subject()) return true;
    const thing =
      prep === 'on top of' ||
      (part !== undefined && !PLACES.has(np.head)) ||
      ((contact !== 'next' || beside) &&
        !np.group &&
        knownSize(np.head) !== undefined &&
        !PLACES.has(np.head) &&
        !PLACES.has(np.words.join(' ')));
    if (thing) {
      const e = this.refer(np, true)[0];
      const kind = contact === 'next' ? (beside ? 'next' : 'on') : contact;
      if (e && s && e.index !== s.index) {
        // Everything listed with the subject and not placed otherwise rests there too.
        const listed = this.unplaced.filter(
          (x) =>
            x !== s &&
            x.index !== e.index &&
            !x.anchorH &&
            !x.anchorV &&
            !this.relations.some((r) => r.a === x.index || r.b === x.index),
        );
        for (const x of [...listed, s]) this.relations.push({ kind, a: x.index, b: e.index });
      } else if (e && !s) this.pendingRelations.push((a) => this.relations.push({ kind, a, b: e.index }));
      this.unplaced = [];
      return true;
    }
    const phrase = np.definite
      ? `the ${np.words.join(' ')}`
      : np.words.length === 1 && TIME_WORDS.has(np.words[0]!)
        ? np.words[0]!
        : withArticle(np.words.join(' '));
    const where = np.group ? (np.groupPhrase ?? phrase) : phrase;
    this.settings.push({ prep: prep === 'on top of' ? 'on' : prep, np: part ? `the ${part} of ${where}` : where });
    return true;
  }
}

export interface ReadOptions {
  /** Counts above this become one group region ("twenty birds"). */
  maxCount: number;
}

export function describe(text: string, opts: ReadOptions = { maxCount: 8 }): Description {
  const cleaned = text
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/[.!]+$/, '');
  const english = looksEnglish(cleaned);
  const neg = findNegations(cleaned);
  const caption = removeSpans(cleaned, neg.spans) || cleaned;
  const exclude = [...new Set(neg.items.map((i) => i.trim()).filter(Boolean))];
  if (!english) return { entities: [], relations: [], comparisons: [], settings: [], exclude, caption, english };
  const { style, body } = findStyle(caption);
  const reader = new Reader(tokenize(body), opts.maxCount);
  reader.run();
  const excludedHeads = new Set(exclude.map((x) => singularize(x.split(/\s+/).pop() ?? x)));
  const settings = [...reader.settings];
  // A place named like an object ("a park", "a lake with a boat") is the background, not a box.
  const places = new Set(
    reader.entities
      .filter((e) => !e.group && e.count === 1 && (PLACES.has(e.head) || PLACES.has(stripArticle(e.label))))
      .map((e) => e.index),
  );
  for (const e of reader.entities) if (places.has(e.index)) settings.unshift({ prep: '', np: e.label });
  for (const r of reader.relations) {
    const subject = reader.entities[r.a];
    if (r.kind === 'above' && places.has(r.b) && subject && !places.has(r.a)) subject.anchorV ??= 'top';
    const below = reader.entities[r.b];
    if (r.kind === 'above' && places.has(r.a) && below && !places.has(r.b)) below.anchorV ??= 'bottom';
  }
  const keep = reader.entities.filter((e) => !excludedHeads.has(e.head) && !places.has(e.index));
  // The background never repeats a boxed object: the image model would paint it twice.
  const boxedHeads = new Set(keep.map((e) => e.head));
  const settingHead = (np: string) =>
    singularize(
      np
        .split(/\s+/)
        .filter((w) => w !== 'of')
        .pop() ?? np,
    );
  for (let i = settings.length - 1; i >= 0; i--)
    if (boxedHeads.has(settingHead(settings[i]!.np))) settings.splice(i, 1);
  const remap = new Map(keep.map((e, i) => [e.index, i] as const));
  const entities = keep.map((e, i) => ({ ...e, index: i }));
  const relations = reader.relations
    .filter((r) => remap.has(r.a) && remap.has(r.b) && (r.kind !== 'between' || r.c === undefined || remap.has(r.c)))
    .map((r): Relation => {
      const a = remap.get(r.a)!,
        b = remap.get(r.b)!;
      return r.kind === 'between'
        ? { ...r, a, b, ...(r.c !== undefined ? { c: remap.get(r.c)! } : {}) }
        : { ...r, a, b };
    });
  const comparisons = reader.comparisons
    .filter((c) => remap.has(c.a) && remap.has(c.b))
    .map((c) => ({ ...c, a: remap.get(c.a)!, b: remap.get(c.b)! }));
  return { entities, relations, comparisons, style, settings, exclude, caption, order: reader.order, english };
}

export { stripArticle };
