/**
 * The offline planner: English text → Scene without any model, for when no LLM is configured or it fails.
 * Reads the text with the small grammar of offline-parse.ts and lays the objects out with offline-layout.ts.
 */
import { normalizeScene } from '../scene/normalize.ts';
import { LIMITS, type Region, type Scene } from '../scene/schema.ts';
import { DEFAULT_SCENE_LIMITS, validateScene, type SceneLimits } from '../scene/validate.ts';
import { CROWDS, capitalize, pluralize, stripArticle } from './lexicon.ts';
import { layoutDescription } from './offline-layout.ts';
import { chooseCounts, describe, type Description, type Entity } from './offline-parse.ts';

export interface PlanOptions {
  width?: number;
  height?: number;
  limits?: SceneLimits;
}

/** A counted group drawn as one region because boxing each one would exceed the limits. */
export interface Crowd {
  /** The region's label ("a flock of birds"). */
  label: string;
  /** The number the text asked for. */
  count: number;
  /** What to tell the user, as one sentence. */
  note: string;
}

export interface PlanResult {
  scene: Scene;
  source: 'llm' | 'offline';
  /** Things the caller should tell the user or log (fallbacks, dropped objects); crowd notes included. */
  warnings: string[];
  /** Groups drawn as one crowd region: the bot and the CLI tell the user (their notes are also in warnings). */
  crowds: Crowd[];
}

/** The longest description the planners read: a paragraph, not a story (LLM context and offline grammar alike). */
export const MAX_DESCRIPTION_CHARS = 4000;

/** Refuses what no planner should read: nothing, or more than MAX_DESCRIPTION_CHARS. */
export function checkDescription(text: string): void {
  if (!/[\p{L}\p{N}]/u.test(text))
    throw new Error('the scene description is empty: describe what the picture should show');
  const length = text.trim().length;
  if (length > MAX_DESCRIPTION_CHARS)
    throw new Error(
      `the scene description is ${length} characters; the planner reads at most ${MAX_DESCRIPTION_CHARS}: keep to what the picture shows (its objects, where they are, the setting and the style)`,
    );
}

/** One sentence for the user about a crowd region. */
export function crowdNote(label: string, count: number, maxRegions: number): string {
  return count > maxRegions
    ? `${count.toLocaleString('en-US')} is more than the ${maxRegions} separate regions a picture can have, so they are drawn as one group: "${label}"`
    : `${count.toLocaleString('en-US')} of them are too small to box one by one, so they are drawn as one group: "${label}"`;
}

/** The crowd region of a counted object that does not fit: "a flock of birds", its prompt keeping the number. */
function toCrowd(e: Entity): void {
  const noun = CROWDS[e.head]?.noun ?? 'group';
  const words = stripArticle(e.label).split(' ');
  const at = words.lastIndexOf(e.head);
  if (at >= 0) words[at] = pluralize(e.head);
  e.crowd = { count: e.count, written: String(e.count), noun };
  e.label = `a ${noun} of ${words.join(' ')}`;
  e.group = true;
  e.count = 1;
}

export function clip(text: string, max: number): string {
  const t = text.replace(/\s+/g, ' ').trim();
  if (t.length <= max) return t;
  const cut = t.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${space > max * 0.6 ? cut.slice(0, space) : cut}…`;
}

/**
 * Caps the number of boxes: the largest counts become one crowd region each (counts compared in the text
 * last, so "more cars than trucks" keeps its relation as long as it can), then late objects drop.
 */
function capRegions(d: Description, maxRegions: number, warnings: string[]): void {
  const total = () => d.entities.reduce((n, e) => n + (e.group ? 1 : e.count), 0);
  const compared = new Set(d.comparisons.flatMap((c) => [c.a, c.b]));
  // Compared counts are chosen again, smaller, before anything becomes a crowd: the relation must hold.
  for (const c of d.comparisons) {
    const [a, b] = [d.entities[c.a]!, d.entities[c.b]!];
    if (total() <= maxRegions || a.group || b.group) continue;
    const [x, y] = chooseCounts(
      c.rel,
      c.k ?? 1,
      c.diff,
      c.given,
      Math.max(2, maxRegions - (total() - a.count - b.count)),
    );
    if (x + y < a.count + b.count) [a.count, b.count] = [x, y];
  }
  while (total() > maxRegions) {
    const biggest = d.entities
      .filter((e) => !e.group && e.count > 1)
      .sort((a, b) => Number(compared.has(a.index)) - Number(compared.has(b.index)) || b.count - a.count)[0];
    if (!biggest) break;
    const n = biggest.count;
    toCrowd(biggest);
    warnings.push(
      `drew the ${n} × "${biggest.head}" as one group box ("${biggest.label}") to stay within ${maxRegions} regions`,
    );
  }
  const left: string[] = [];
  while (total() > maxRegions) {
    const dropped = d.entities.pop()!;
    d.relations = d.relations.filter(
      (r) => r.a !== dropped.index && r.b !== dropped.index && (r.kind !== 'between' || r.c !== dropped.index),
    );
    d.comparisons = d.comparisons.filter((c) => c.a !== dropped.index && c.b !== dropped.index);
    left.unshift(dropped.label);
  }
  // One note however long the text: a paragraph can name a hundred things.
  if (left.length)
    warnings.push(
      `left out ${left.length > 3 ? `${left.length} objects (${left.slice(0, 3).join(', ')}, …)` : left.map((l) => `"${l}"`).join(', ')}: at most ${maxRegions} regions`,
    );
}

function settingText(d: Description): { background: string; where: string } {
  const parts = d.settings.map((s, i) => (i === 0 || !s.prep ? s.np : `${s.prep} ${s.np}`));
  const background = parts.join(' ').trim();
  const first = d.settings[0];
  const where = first
    ? [first.prep || 'in', first.np, ...d.settings.slice(1).map((s) => `${s.prep} ${s.np}`.trim())].join(' ').trim()
    : '';
  return { background, where };
}

export function planOffline(text: string, opts: PlanOptions = {}): PlanResult {
  const limits = opts.limits ?? DEFAULT_SCENE_LIMITS;
  const width = opts.width ?? 1024;
  const height = opts.height ?? 1024;
  const warnings: string[] = [];
  const input = text.trim();
  checkDescription(input);
  const d = describe(input, { maxCount: limits.maxRegions });
  if (!d.english)
    warnings.push('the offline planner reads English only: the text is used as one caption without boxes');
  else if (!d.entities.length && !d.settings.length && !d.exclude.length)
    throw new Error(
      `found nothing to draw in "${clip(input, 60)}": name at least one thing or place, for example "a red fox in a snowy forest" or "two cats on a sofa"`,
    );
  capRegions(d, limits.maxRegions, warnings);
  const crowds: Crowd[] = d.entities
    .filter((e) => e.crowd && e.crowd.count > 0)
    .map((e) => ({
      label: e.label,
      count: e.crowd!.count,
      note: crowdNote(e.label, e.crowd!.count, limits.maxRegions),
    }));
  for (const c of crowds) if (!warnings.some((w) => w.includes(`("${c.label}")`))) warnings.push(c.note);
  const { background, where } = settingText(d);
  const style = d.style ? stripArticle(d.style) : '';
  const placed = layoutDescription(d, width, height);
  const regions: Region[] = placed.map((p, i) => {
    const e = d.entities[p.entity]!;
    const label = clip(e.label, LIMITS.labelMax);
    // A crowd's prompt keeps the number the text asked for: "a flock of a thousand birds".
    const named = e.crowd ? label.replace(/^(an?\s+\S+\s+of)\s+/, `$1 ${e.crowd.written} `) : label;
    const said = e.action ? `${named} ${e.action}` : named;
    // The setting once: "driving down a street" already says where.
    const place = where.replace(/^\S+\s+/, '');
    const prompt = [said + (where && !said.includes(place) ? ` ${where}` : ''), style].filter(Boolean).join(', ');
    return { id: `r${i + 1}`, label, prompt: clip(prompt, LIMITS.promptMax), box: p.box };
  });
  const scene = normalizeScene(
    {
      width,
      height,
      prompt: clip(capitalize(d.caption), LIMITS.promptMax * 2),
      // A styled picture gets no "realistic" background: "an oil painting of two cats" is not realistic.
      background: clip(
        [background || (d.english ? (style ? 'a simple background' : 'a realistic scene') : ''), style]
          .filter(Boolean)
          .join(', '),
        LIMITS.promptMax,
      ),
      exclude: d.exclude.slice(0, LIMITS.excludeMax).map((x) => clip(x, LIMITS.labelMax)),
      regions,
    },
    limits,
  );
  return { scene: validateScene(scene, limits), source: 'offline', warnings, crowds };
}
