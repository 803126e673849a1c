/**
 * LMD's stage-1 rules (Lian et al., the layout before any image is painted), applied to our Scene:
 * - every named object has exactly the intended number of boxes (a box counts for an object when its label
 *   names it, singular or plural);
 * - each attribute is bound to its own object: every box of the object carries it, and no box of the object
 *   carries an attribute that belongs only to another object of the prompt;
 * - left/right/above/below are judged on box centres (the first box of each object, as LMD's get_box);
 * - a negated object has no box and is listed in `exclude`.
 */
import { singularize } from '../src/planner/lexicon.ts';
import type { Box, Scene } from '../src/scene/schema.ts';
import type { EvalCase } from './cases.ts';

function words(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean)
    .map(singularize);
}

/** Whether `text` names `name` as whole words (so "car" is not found in "a carrot" or "a card"). */
export function names(text: string, name: string): boolean {
  const t = words(text),
    n = words(name);
  for (let i = 0; i + n.length <= t.length; i++) if (n.every((w, k) => t[i + k] === w)) return true;
  return false;
}

const centre = (b: Box) => ({ x: b.x + b.w / 2, y: b.y + b.h / 2 });

export interface Verdict {
  ok: boolean;
  /** Why not, in words, for the failure listing. */
  why: string[];
}

export function score(c: EvalCase, scene: Scene): Verdict {
  const why: string[] = [];
  const boxesOf = (name: string) => scene.regions.filter((r) => names(r.label, name));
  for (const o of c.objects) {
    const boxes = boxesOf(o.name);
    if (boxes.length !== o.count) why.push(`${o.name}: ${boxes.length} boxes, expected ${o.count}`);
    const own = new Set(o.attributes ?? []);
    const foreign = new Set(
      c.objects
        .filter((x) => x !== o)
        .flatMap((x) => x.attributes ?? [])
        .filter((a) => !own.has(a)),
    );
    for (const b of boxes) {
      for (const a of own) if (!names(b.label, a)) why.push(`${o.name}: box "${b.label}" lacks "${a}"`);
      for (const a of foreign)
        if (names(b.label, a)) why.push(`${o.name}: box "${b.label}" carries "${a}", which belongs to another object`);
    }
  }
  for (const r of c.relations ?? []) {
    const a = boxesOf(r.a)[0],
      b = boxesOf(r.b)[0];
    if (!a || !b) {
      why.push(`${r.a} ${r.rel} ${r.b}: missing box`);
      continue;
    }
    const ca = centre(a.box),
      cb = centre(b.box);
    const holds =
      r.rel === 'left' ? ca.x < cb.x : r.rel === 'right' ? ca.x > cb.x : r.rel === 'above' ? ca.y < cb.y : ca.y > cb.y;
    if (!holds) why.push(`${r.a} is not ${r.rel} ${r.b} (centres ${fmt(ca)} vs ${fmt(cb)})`);
  }
  // The noun a label names: the word before "of" ("the back of a truck" → back), else the last word.
  const nounOf = (label: string) => {
    const w = words(label);
    const of = w.indexOf('of');
    return of > 0 ? w[of - 1]! : w[w.length - 1]!;
  };
  for (const a of c.absent ?? []) {
    const boxed = scene.regions.filter((r) => nounOf(r.label) === singularize(a.toLowerCase()));
    if (boxed.length) why.push(`"${a}" is not a thing but has a box ("${boxed[0]!.label}")`);
  }
  if (c.compare) {
    const { a, b, rel, k, diff } = c.compare;
    const [x, y] = [boxesOf(a).length, boxesOf(b).length];
    const holds =
      x > 0 &&
      y > 0 &&
      (rel === 'more' ? x > y : rel === 'fewer' ? x < y : rel === 'equal' ? x === y : x === (k ?? 1) * y) &&
      (diff === undefined || x - y === diff);
    if (!holds)
      why.push(
        `${a} ${rel === 'times' ? `${k} times as many as` : rel === 'equal' ? 'as many as' : `${rel} than`} ${b}${diff ? ` (by ${diff})` : ''}: ${x} vs ${y} boxes`,
      );
  }
  for (const n of c.negated ?? []) {
    const drawn = boxesOf(n);
    if (drawn.length) why.push(`negated ${n} has ${drawn.length} box(es)`);
    if (!scene.exclude.some((x) => names(x, n)))
      why.push(`negated ${n} is not in exclude (${JSON.stringify(scene.exclude)})`);
  }
  return { ok: why.length === 0, why };
}

function fmt(p: { x: number; y: number }): string {
  return `(${p.x.toFixed(2)}, ${p.y.toFixed(2)})`;
}
