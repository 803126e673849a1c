/**
 * The offline editor: an English instruction about an existing Scene → Edit, by rules. Handles
 * "change/replace/turn the <ref> (in)to <new>", "make the <ref> <attribute>", "remove the <ref>",
 * "add <thing> <where>", "move the <ref> to <where>", "change the background to …", "make it <style>",
 * "start over …". References go through the deterministic resolver; an ambiguous one becomes a question.
 */
import { applyEdit } from '../scene/edit.ts';
import { normalizeScene } from '../scene/normalize.ts';
import {
  LIMITS,
  type Box,
  type Edit,
  type NewRegion,
  type Region,
  type RegionUpdate,
  type Scene,
} from '../scene/schema.ts';
import { DEFAULT_SCENE_LIMITS, type SceneLimits } from '../scene/validate.ts';
import { ADJECTIVES, COLOURS, SIZE_WORDS, SMALL_THINGS, singularize, stripArticle, withArticle } from './lexicon.ts';
import { clip } from './offline.ts';
import { describe } from './offline-parse.ts';
import { defaultSize, placeBox, scaleBox, type Where } from './placement.ts';
import { resolveReference, type Resolution } from './resolve.ts';

export interface EditResult {
  edit: Edit;
  source: 'llm' | 'offline';
  warnings: string[];
  /** Regions the instruction was about (what "it" means next time). */
  targets: string[];
}

export interface EditOptions {
  /** Ids the previous turn talked about, for "it" and "them". */
  lastIds?: string[];
  limits?: SceneLimits;
}

const EXAMPLES =
  '"change the left cat to a dog", "make the car red", "remove the tree", "add a ball on the right", "move the dog to the left", "change the background to a beach"';

function clarify(question: string): Edit {
  return { kind: 'clarify', question: clip(question, 500) };
}

function normalise(instruction: string): string {
  return instruction
    .trim()
    .replace(/[.!?]+$/, '')
    .replace(/\s+/g, ' ')
    .replace(
      /^(?:(?:please|pls|ok|okay|now|and|then|also|hey|could you|can you|would you|i want you to|i'd like you to|i want to|i would like to|let's|lets)\s*,?\s+)+/i,
      '',
    )
    .replace(/\s+please$/i, '')
    .trim();
}

const STYLE_TARGETS = /^(?:it|this|the (?:picture|image|photo|whole thing|scene|painting|style))$/i;
const BACKGROUND_TARGETS = /^(?:the )?(?:background|backdrop|setting|scenery|location|place|weather|sky|environment)$/i;

/** Turns a resolver answer into ids, or a question. */
function idsOf(res: Resolution, phrase: string): { ids: string[] } | { question: string } {
  switch (res.kind) {
    case 'unique':
      return { ids: [res.id] };
    case 'many':
      return { ids: res.ids };
    case 'ambiguous':
      return { question: res.question };
    case 'none':
      return { question: res.question };
    case 'unparsed':
      return { question: `I'm not sure what "${phrase}" refers to. Name the object, for example "the left cat".` };
  }
}

function resolveAll(scene: Scene, phrase: string, opts: EditOptions): { ids: string[] } | { question: string } {
  const parts = phrase.split(/\s*(?:,|\band\b)\s*/).filter(Boolean);
  const ids: string[] = [];
  for (const p of parts.length > 1 ? parts : [phrase]) {
    const r = idsOf(resolveReference(scene, p, { lastIds: opts.lastIds }), p);
    if ('question' in r) return r;
    ids.push(...r.ids);
  }
  return { ids: [...new Set(ids)] };
}

function isAttributeOnly(words: string[]): boolean {
  return (
    words.length > 0 &&
    words.every(
      (w) => COLOURS.has(w) || ADJECTIVES.has(w) || SIZE_WORDS[w] !== undefined || w === 'and' || w === 'more',
    )
  );
}

/** "a blue car" + ["red"] → "a red car"; colours replace colours, other adjectives go in front. */
export function applyAttributes(text: string, attrs: string[], head: string): string {
  const hasColour = attrs.some((a) => COLOURS.has(a));
  const words = text.split(/\s+/);
  const kept = hasColour ? words.filter((w) => !COLOURS.has(w.toLowerCase())) : words;
  const at = kept.findIndex((w) => singularize(w.toLowerCase().replace(/[^\p{L}-]/gu, '')) === head);
  const insertAt = at >= 0 ? at : kept.findIndex((w) => !/^(a|an|the)$/i.test(w));
  const adjs = attrs.filter((a) => !kept.map((w) => w.toLowerCase()).includes(a));
  const out = [...kept];
  out.splice(Math.max(0, insertAt), 0, ...adjs);
  return withArticle(stripArticle(out.join(' ')));
}

/** Replaces the thing a region shows, keeping whatever the old prompt said around it (style, setting). */
function replaceThing(r: Region, newThing: string): RegionUpdate {
  const label = clip(withArticle(stripArticle(newThing)), LIMITS.labelMax);
  const at = r.prompt.toLowerCase().indexOf(r.label.toLowerCase());
  const prompt = at >= 0 ? r.prompt.slice(0, at) + label + r.prompt.slice(at + r.label.length) : label;
  return { id: r.id, label, prompt: clip(prompt, LIMITS.promptMax) };
}

function findPhrase(caption: string, label: string): { start: number; end: number; bare: boolean } | undefined {
  const lower = caption.toLowerCase();
  for (const [form, bare] of [
    [label.toLowerCase(), false],
    [stripArticle(label).toLowerCase(), true],
  ] as const) {
    if (!form) continue;
    const re = new RegExp(`(^|[^\\p{L}])(${form.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})(?![\\p{L}])`, 'u');
    const m = re.exec(lower);
    if (m) return { start: m.index + m[1]!.length, end: m.index + m[1]!.length + m[2]!.length, bare };
  }
  return undefined;
}

/**
 * The caption after a region's label changed (or, without `to`, after it was removed), so the repaint's
 * global prompt names what is now there. Unchanged when the caption does not contain the old label.
 */
export function rewriteCaption(caption: string, from: string, to?: string): string {
  const hit = findPhrase(caption, from);
  if (!hit) return caption;
  const capital = hit.start === 0 && /^\p{Lu}/u.test(caption);
  let out: string;
  if (to !== undefined) {
    const replacement = hit.bare ? stripArticle(to) : withArticle(stripArticle(to));
    out = caption.slice(0, hit.start) + replacement + caption.slice(hit.end);
  } else {
    let { start, end } = hit;
    // Its position words go with it: "a black cat on the right".
    const where =
      /^\s+(?:on|at|in|to)\s+the\s+(?:(?:top|bottom|upper|lower)\s+)?(?:left|right|top|bottom|middle|center|centre|corner|background|foreground)(?:\s+(?:side|corner))?(?![\p{L}])/iu.exec(
        caption.slice(end),
      );
    if (where) end += where[0].length;
    const before = caption.slice(0, start),
      after = caption.slice(end);
    const m1 = /(\s+(?:and|with)\s+|,\s*)$/i.exec(before);
    const m2 = /^(\s+and\s+|,\s*)/i.exec(after);
    if (m1) start -= m1[0].length;
    else if (m2) end += m2[0].length;
    out = caption.slice(0, start) + caption.slice(end);
  }
  out = out.replace(/\s{2,}/g, ' ').trim();
  return capital ? out.charAt(0).toUpperCase() + out.slice(1) : out;
}

/** The noun a label is about: "a glass of lemonade" → glass, "a cat wearing a hat" → cat, "a red car" → car. */
function headOf(label: string): string {
  const w = stripArticle(label).toLowerCase().split(/\s+/);
  const stop = w.findIndex(
    (x, i) =>
      i > 0 && ['of', 'with', 'wearing', 'holding', 'on', 'in', 'at', 'sitting', 'standing', 'next'].includes(x),
  );
  return singularize(stop > 0 ? w[stop - 1]! : w[w.length - 1]!);
}

/** Parses "<where>" phrases of add/move instructions against the scene. */
function parseWhere(scene: Scene, text: string, opts: EditOptions): Where | { question: string } | undefined {
  const t = text.trim().toLowerCase();
  if (!t) return { kind: 'anywhere' };
  let m =
    /^(?:in|at|to|on|into|towards?)?\s*(?:the\s+)?(top|upper|bottom|lower)?\s*(left|right)?\s*(corner|side|edge|half)?$/.exec(
      t,
    );
  if (m && (m[1] || m[2])) {
    const v = m[1] ? (/top|upper/.test(m[1]) ? 'top' : 'bottom') : undefined;
    const h = m[2] as 'left' | 'right' | undefined;
    return { kind: 'spot', h, v, corner: m[3] === 'corner' };
  }
  if (/^(?:in|at|to|into)?\s*(?:the\s+)?(?:middle|center|centre)$/.test(t))
    return { kind: 'spot', h: 'center', v: 'middle' };
  if (/^(?:on\s+)?top$/.test(t) || /^(?:in\s+)?the\s+sky$/.test(t)) return { kind: 'spot', v: 'top' };
  if (/^(?:in\s+)?the\s+corner$/.test(t)) return { kind: 'spot', h: 'right', v: 'bottom', corner: true };
  m = /^between\s+(.+)$/.exec(t);
  if (m) {
    const phrase = m[1]!;
    let a: Region | undefined, b: Region | undefined;
    if (/^(them|the two|those two|both)$/.test(phrase) && (opts.lastIds?.length === 2 || scene.regions.length === 2)) {
      const ids = opts.lastIds?.length === 2 ? opts.lastIds : scene.regions.map((r) => r.id);
      [a, b] = ids.map((id) => scene.regions.find((r) => r.id === id));
    } else {
      const parts = phrase.split(/\s+and\s+/);
      if (parts.length === 2) {
        const ra = idsOf(resolveReference(scene, parts[0]!, opts), parts[0]!);
        const rb = idsOf(resolveReference(scene, parts[1]!, opts), parts[1]!);
        if ('question' in ra) return ra;
        if ('question' in rb) return rb;
        [a, b] = [scene.regions.find((r) => r.id === ra.ids[0]), scene.regions.find((r) => r.id === rb.ids[0])];
      } else {
        const r = idsOf(resolveReference(scene, phrase, opts), phrase);
        if ('question' in r) return r;
        if (r.ids.length === 2) [a, b] = r.ids.map((id) => scene.regions.find((x) => x.id === id));
      }
    }
    if (a && b) return { kind: 'between', a: a.box, b: b.box };
    return { question: `Between which two things? For example "between the cat and the dog".` };
  }
  m =
    /^(next to|beside|near|by|left of|to the left of|on the left of|right of|to the right of|on the right of|above|over|below|under|beneath|underneath|on top of|on|in front of|behind)\s+(.+)$/.exec(
      t,
    );
  if (m) {
    const r = idsOf(resolveReference(scene, m[2]!, opts), m[2]!);
    if ('question' in r) return r;
    const of = scene.regions.find((x) => x.id === r.ids[0])!;
    const rel = m[1]!;
    const side = /left/.test(rel)
      ? 'left'
      : /right/.test(rel)
        ? 'right'
        : /above|over/.test(rel)
          ? 'above'
          : /below|under|beneath|in front/.test(rel)
            ? 'below'
            : /^on/.test(rel)
              ? 'on'
              : /behind/.test(rel)
                ? 'above'
                : undefined;
    return { kind: 'near', of: of.box, side };
  }
  return undefined;
}

const WHERE_SPLIT =
  /\s+(?=(?:on the (?:left|right|top|bottom)|on top|at the (?:top|bottom|left|right)|in the (?:top|bottom|upper|lower|middle|center|centre|corner|sky)|to the (?:left|right)|between|next to|beside|near|by the|above|below|under|beneath|underneath|behind|in front of|on top of|on the|left of|right of|in the top|in the bottom)\b)/i;

function splitThingWhere(text: string): { thing: string; where: string } {
  const parts = text.split(WHERE_SPLIT);
  return { thing: parts[0]!.trim(), where: parts.slice(1).join(' ').trim() };
}

function newRegions(
  scene: Scene,
  thing: string,
  where: Where,
  limits: SceneLimits,
): NewRegion[] | { question: string } {
  const d = describe(thing, { maxCount: limits.maxRegions });
  const entities = d.entities.length ? d.entities : [];
  if (!entities.length) return { question: `What should I add? For example "add a red ball on the right".` };
  const out: NewRegion[] = [];
  let working = scene;
  for (const e of entities) {
    const n = e.group ? 1 : e.count;
    for (let i = 0; i < n; i++) {
      if (working.regions.length >= limits.maxRegions)
        return {
          question: `The picture already has ${limits.maxRegions} regions, the most I can place. Remove or merge something first.`,
        };
      const size = defaultSize(scene, SMALL_THINGS.has(e.head) ? 0.7 : 1);
      const box = placeBox(working, where, size);
      const label = clip(e.label, LIMITS.labelMax);
      const style = scene.regions[0]?.prompt.includes(', ')
        ? scene.regions[0].prompt.slice(scene.regions[0].prompt.lastIndexOf(', '))
        : '';
      out.push({ label, prompt: clip(`${label}${style}`, LIMITS.promptMax), box });
      working = {
        ...working,
        regions: [...working.regions, { id: `new${working.regions.length}`, label, prompt: label, box }],
      };
    }
  }
  return out;
}

/** The new caption for label changes, when the caption names the old labels. */
function captionFor(scene: Scene, update: RegionUpdate[]): { prompt?: string } {
  let caption = scene.prompt;
  for (const u of update) {
    const old = scene.regions.find((r) => r.id === u.id);
    if (old && u.label && u.label !== old.label) caption = rewriteCaption(caption, old.label, u.label);
  }
  return caption !== scene.prompt ? { prompt: clip(caption, LIMITS.promptMax * 2) } : {};
}

function change(edit: Partial<Extract<Edit, { kind: 'change' }>>): Edit {
  return { kind: 'change', update: [], add: [], remove: [], ...edit };
}

function snap(scene: Scene, box: Box, limits: SceneLimits): Box {
  return normalizeScene({ ...scene, regions: [{ id: 'x', label: 'x', prompt: 'x', box }] }, limits).regions[0]!.box;
}

const EDIT_VERBS =
  /^(?:make|change|turn|transform|convert|replace|swap|switch|remove|delete|erase|get rid of|take away|add|insert|include|put|place|move|shift|paint|colou?r|dye|give|set)\b/i;
/** Verbs that give a thing new attributes: "paint the cat black" is "make the cat black". */
const ATTRIBUTE_VERB = /^(?:make|paint|colou?r|dye|turn|change)\b/i;
const SHOULD_BE = /^(.+?)\s+(?:should be|must be|needs to be|has to be)\s+/i;

/**
 * "make the cat black and the ball blue", "remove the lamp, then add a plant on the left": several changes in
 * one instruction. Splits at "and" / "then" / "," / ";" where what follows is a change of its own (it starts
 * with an edit verb, or — after make/paint/turn — names another thing: "and the ball blue" borrows the verb).
 */
export function splitInstruction(text: string): string[] {
  const parts = text
    .split(/\s*(?:[;,]\s*(?:and\s+|then\s+)?(?:also\s+)?|\s+(?:and\s+then|and\s+also|and|then|also|plus)\s+)/i)
    .filter(Boolean);
  if (parts.length < 2) return [text];
  const out: string[] = [];
  for (const part of parts) {
    const prev = out[out.length - 1];
    if (!prev) {
      out.push(part);
      continue;
    }
    if (EDIT_VERBS.test(part)) out.push(part);
    else if (/^(?:the|its|their|that|this|both)\b/i.test(part) && ATTRIBUTE_VERB.test(out[0]!))
      out.push(`${/^(\S+)/.exec(out[0]!)![1]} ${part}`);
    else if (/^(?:the|its|their|that|this|both)\b/i.test(part) && SHOULD_BE.test(out[0]!)) out.push(`make ${part}`);
    else out[out.length - 1] = `${prev}${/^(?:and|then)\b/.test(part) ? ' ' : ' and '}${part}`;
  }
  return out;
}

/**
 * The one Edit (relative to `scene`) with the effect of the changes that led to `final`. `origin` maps each
 * region id of `final` to the id it had in `scene`, or null for a region added on the way (a later "add" may
 * reuse the id of a region an earlier clause removed).
 */
function combined(scene: Scene, final: Scene, origin: Map<string, string | null>): Extract<Edit, { kind: 'change' }> {
  const after = new Map(
    final.regions.filter((r) => origin.get(r.id) != null).map((r) => [origin.get(r.id)!, r] as const),
  );
  const same = (a: Box, b: Box) => a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;
  const update: RegionUpdate[] = [];
  for (const r of scene.regions) {
    const n = after.get(r.id);
    if (!n) continue;
    const u: RegionUpdate = { id: r.id };
    if (n.label !== r.label) u.label = n.label;
    if (n.prompt !== r.prompt) u.prompt = n.prompt;
    if (!same(n.box, r.box)) u.box = n.box;
    if (Object.keys(u).length > 1) update.push(u);
  }
  const add = final.regions
    .filter((r) => origin.get(r.id) == null)
    .map(({ label, prompt, box }) => ({ label, prompt, box }));
  const remove = scene.regions.filter((r) => !after.has(r.id)).map((r) => r.id);
  return {
    kind: 'change',
    update,
    add,
    remove,
    ...(final.prompt !== scene.prompt ? { prompt: final.prompt } : {}),
    ...(final.background !== scene.background ? { background: final.background } : {}),
    ...(final.exclude.join('\u0000') !== scene.exclude.join('\u0000') ? { exclude: final.exclude } : {}),
  };
}

export function editOffline(scene: Scene, instruction: string, opts: EditOptions = {}): EditResult {
  const limits = opts.limits ?? DEFAULT_SCENE_LIMITS;
  const text = normalise(instruction);
  const result = (edit: Edit, targets: string[] = []): EditResult => ({
    edit,
    source: 'offline',
    warnings: [],
    targets,
  });
  if (!text) return result(clarify(`What should I change? For example ${EXAMPLES}.`));

  const clauses = splitInstruction(text);
  if (clauses.length > 1) {
    // Each change in turn on the scene the previous one left; a question about any of them is asked as it is.
    let cur = scene;
    let origin = new Map<string, string | null>(scene.regions.map((r) => [r.id, r.id]));
    const targets: string[] = [];
    let ok = true;
    for (const clause of clauses) {
      const r = editSingle(cur, clause, { ...opts, lastIds: targets.length ? targets : opts.lastIds }, limits);
      if (r.edit.kind === 'clarify') return r;
      if (r.edit.kind !== 'change') {
        ok = false;
        break;
      }
      const edit = r.edit;
      try {
        cur = applyEdit(cur, edit).scene;
      } catch {
        ok = false;
        break;
      }
      origin = new Map(cur.regions.map((x) => [x.id, edit.remove.includes(x.id) ? null : (origin.get(x.id) ?? null)]));
      targets.push(...r.targets);
    }
    if (ok) return result(combined(scene, cur, origin), [...new Set(targets)]);
  }
  return editSingle(scene, text, opts, limits);
}

function editSingle(scene: Scene, text: string, opts: EditOptions, limits: SceneLimits): EditResult {
  const instruction = text;
  const result = (edit: Edit, targets: string[] = []): EditResult => ({
    edit,
    source: 'offline',
    warnings: [],
    targets,
  });

  // Start over
  let m =
    /^(?:start over|start again|restart|from scratch|new (?:picture|image|scene)|forget (?:it|that|this|everything)|scrap (?:it|that|this))\b[\s:,.-]*(?:with|of|showing|:)?\s*(.*)$/i.exec(
      text,
    ) ?? /^(?:instead,?\s+)?(?:draw|paint|make|show)\s+(?:me\s+)?(.+?)\s+instead$/i.exec(text);
  if (m) {
    const description = m[1]!.trim();
    return result(
      description
        ? { kind: 'start_over', description: clip(description, 2000) }
        : clarify('What should the new picture show?'),
    );
  }

  // Remove
  m =
    /^(?:remove|delete|erase|get rid of|take away|take out|drop|eliminate|lose|no more|hide)\s+(.+?)(?:\s+from\s+(?:the\s+)?(?:picture|image|scene|photo))?$/i.exec(
      text,
    );
  if (m) {
    const r = resolveAll(scene, m[1]!, opts);
    if ('question' in r) return result(clarify(r.question));
    const caption = scene.regions
      .filter((x) => r.ids.includes(x.id))
      .reduce((c, x) => rewriteCaption(c, x.label), scene.prompt);
    return result(
      change({ remove: r.ids, ...(caption !== scene.prompt && caption ? { prompt: caption } : {}) }),
      r.ids,
    );
  }

  // Background and style
  m =
    /^(?:change|set|make|turn|switch|replace)\s+(the (?:background|backdrop|setting|scenery|location|sky|weather))\s+(?:to|into|with|in)?\s*(.+)$/i.exec(
      text,
    );
  if (m && (!/sky/i.test(m[1]!) || resolveReference(scene, m[1]!).kind === 'none')) {
    const value = m[2]!.trim();
    return result(
      change({
        background: clip(
          /sky|weather/i.test(m[1]!)
            ? `${scene.background ? `${scene.background}, ` : ''}${m[1]!.replace(/^the\s+/i, '')} ${value}`.trim()
            : value,
          LIMITS.promptMax,
        ),
      }),
    );
  }
  m = /^(?:put|set|place|move)\s+(?:it|them|everything|the scene|the picture)\s+(on|in|at|under|inside)\s+(.+)$/i.exec(
    text,
  );
  if (m)
    return result(
      change({
        background: clip(m[2]!, LIMITS.promptMax),
        prompt: clip(`${scene.prompt.replace(/\s*,?\s*(on|in|at) [^,]+$/i, '')} ${m[1]} ${m[2]}`, LIMITS.promptMax * 2),
      }),
    );
  m =
    /^(?:make it|turn it into|render it as|redo it as|do it as|make the (?:picture|image|whole thing) (?:look )?(?:like )?)\s*(?:an?\s+)?(.+?)$/i.exec(
      text,
    ) ?? /^(?:in|as)\s+(?:an?\s+)?(.+?\s+style)$/i.exec(text);
  if (m) {
    const style = m[1]!.trim();
    return result(
      change({
        prompt: clip(`${scene.prompt}, ${style}`, LIMITS.promptMax * 2),
        background: clip(scene.background ? `${scene.background}, ${style}` : style, LIMITS.promptMax),
      }),
    );
  }

  // Add
  m = /^(?:add|insert|include|draw|paint|put|place)\s+(?:in\s+)?(.+)$/i.exec(text);
  if (m && !/^(?:the|this|that|it)\b/i.test(m[1]!)) {
    const { thing, where } = splitThingWhere(m[1]!);
    const w = parseWhere(scene, where, opts);
    if (!w)
      return result(
        clarify(
          `Where should ${withArticle(stripArticle(thing))} go? For example "on the left", "next to the dog" or "between them".`,
        ),
      );
    if ('question' in w) return result(clarify(w.question));
    const add = newRegions(scene, thing, w, limits);
    if ('question' in add) return result(clarify(add.question));
    const caption = clip(`${scene.prompt}, with ${add.map((a) => a.label).join(' and ')}`, LIMITS.promptMax * 2);
    return result(change({ add: add.map((a) => ({ ...a, box: snap(scene, a.box, limits) })), prompt: caption }));
  }

  // Move
  m =
    /^(?:move|put|place|shift|push|drag|bring)\s+(.+?)\s+(?:to|on|onto|into|in|towards?|over|next|beside|between|above|below|under|behind|in front)\b\s*(.*)$/i.exec(
      text,
    );
  if (m) {
    const r = resolveAll(scene, m[1]!, opts);
    if ('question' in r) return result(clarify(r.question));
    const prepWord = text.slice(m.index + text.toLowerCase().indexOf(m[1]!.toLowerCase()) + m[1]!.length).trim();
    const w = parseWhere(scene, prepWord, { ...opts, lastIds: r.ids });
    if (!w)
      return result(
        clarify(`Where should it go? For example "to the left", "to the top right corner" or "next to the dog".`),
      );
    if ('question' in w) return result(clarify(w.question));
    const moving = scene.regions.filter((x) => r.ids.includes(x.id));
    const update: RegionUpdate[] = [];
    let working = scene;
    for (const reg of moving) {
      const box = snap(scene, placeBox(working, w, { w: reg.box.w, h: reg.box.h }, [reg.id]), limits);
      update.push({ id: reg.id, box });
      working = { ...working, regions: working.regions.map((x) => (x.id === reg.id ? { ...x, box } : x)) };
    }
    return result(change({ update }), r.ids);
  }

  // Replace X with Y
  m = /^(?:replace|swap|switch|exchange|substitute)\s+(.+?)\s+(?:with|by|for)\s+(.+)$/i.exec(text);
  let target: string | undefined, value: string | undefined;
  if (m) [target, value] = [m[1]!, m[2]!];
  m = m ?? /^(?:change|turn|transform|convert|make|morph|swap)\s+(.+?)\s+(?:into|to|in to)\s+(.+)$/i.exec(text);
  if (m && !target) [target, value] = [m[1]!, m[2]!];
  if (!target) {
    // "make the car red", "make the cat a dog", "make the dog bigger", "the cat should be black"
    m =
      /^(?:make|paint|colou?r|dye|turn)\s+(.+)$/i.exec(text) ??
      /^(.+?)\s+(?:should be|must be|needs to be|has to be)\s+(.+)$/i.exec(text);
    if (m) {
      const words = (m[2] ? `${m[1]} ${m[2]}` : m[1]!).split(/\s+/);
      const splitAt = m[2] ? m[1]!.split(/\s+/).length : -1;
      let missing: string | undefined;
      for (let k = splitAt > 0 ? splitAt : words.length - 1; k >= 1; k--) {
        const ref = words.slice(0, k).join(' ');
        const rest = words.slice(k).join(' ');
        // "make the cat black and white": "and white" is never a whole value.
        if (/^and\b/i.test(rest)) continue;
        const res = resolveReference(scene, ref, { lastIds: opts.lastIds });
        const kind = res.kind;
        // "make the ball blue" with no ball: ask about the ball rather than not understanding at all.
        if (kind === 'none' && !missing && isAttributeOnly(rest.toLowerCase().split(/\s+/))) missing = res.question;
        if (kind === 'unparsed' || (kind === 'none' && k > 1 && splitAt < 0)) continue;
        [target, value] = [ref, rest];
        break;
      }
      if (!target && STYLE_TARGETS.test(words[0] ?? '')) {
        const style = words.slice(1).join(' ');
        return result(change({ prompt: clip(`${scene.prompt}, ${style}`, LIMITS.promptMax * 2) }));
      }
      if (!target && missing) return result(clarify(missing));
    }
  }
  if (target && value) {
    if (STYLE_TARGETS.test(target.trim())) {
      const v = value.trim();
      return result(
        change({
          prompt: clip(`${scene.prompt}, ${v}`, LIMITS.promptMax * 2),
          background: clip(scene.background ? `${scene.background}, ${v}` : v, LIMITS.promptMax),
        }),
      );
    }
    if (BACKGROUND_TARGETS.test(target.trim()) && resolveReference(scene, target).kind === 'none') {
      return result(change({ background: clip(value, LIMITS.promptMax) }));
    }
    const r = resolveAll(scene, target, opts);
    if ('question' in r) return result(clarify(r.question));
    const valueWords = value
      .toLowerCase()
      .replace(/[^\p{L}\s-]/gu, ' ')
      .split(/\s+/)
      .filter(Boolean);
    const regions = scene.regions.filter((x) => r.ids.includes(x.id));
    if (isAttributeOnly(valueWords)) {
      const sizes = valueWords.filter((w) => SIZE_WORDS[w] !== undefined && !COLOURS.has(w));
      const attrs = valueWords.filter((w) => !sizes.includes(w) && w !== 'and' && w !== 'more');
      const update: RegionUpdate[] = regions.map((reg) => {
        const head = headOf(reg.label);
        const u: RegionUpdate = { id: reg.id };
        if (attrs.length) {
          u.label = clip(applyAttributes(reg.label, attrs, head), LIMITS.labelMax);
          u.prompt = clip(applyAttributes(reg.prompt, attrs, head), LIMITS.promptMax);
        }
        if (sizes.length) u.box = snap(scene, scaleBox(reg.box, SIZE_WORDS[sizes[0]!]!), limits);
        return u;
      });
      return result(change({ update, ...captionFor(scene, update) }), r.ids);
    }
    // "turn the cats into lions": one lion per cat, so the label is singular.
    const parsed = describe(value, { maxCount: limits.maxRegions }).entities;
    const thing =
      parsed.length === 1 && !parsed[0]!.group ? parsed[0]!.label : value.replace(/^(?:an?|the|some)\s+/i, '');
    const update = regions.map((reg) => replaceThing(reg, thing));
    return result(change({ update, ...captionFor(scene, update) }), r.ids);
  }
  return result(
    clarify(`I couldn't work out what to change in "${clip(instruction, 80)}". Try for example ${EXAMPLES}.`),
  );
}
