/**
 * Boxes for the offline planner, in two levels.
 *
 * Free objects (nothing holds, carries or hides them) → rows (by above/below relations and top/bottom anchors)
 * → an order inside each row (left-of, between, left/right anchors, mention order) → equal slots, so their
 * boxes never overlap. Objects related vertically but alone in their row are aligned in x. Every box is sized
 * from its object's size prior (sizes.ts) with one scale for the whole picture, computed in pixels so the
 * image's aspect ratio is respected: a ball comes out smaller than a cat, a sofa wider than tall. Objects in
 * a row stand on a common ground line.
 *
 * Objects in contact with another one (on, under, inside, in front of, behind, held by) are then placed
 * against that object's box: on its top surface, between its legs, within it, overlapping its lower or
 * upper part, at its hand. Several objects against the same one share its width in the order the text asks.
 */
import type { Box } from '../scene/schema.ts';
import { SIZE_WORDS } from './lexicon.ts';
import { CONTACT, type Description, type Entity, type Relation } from './offline-parse.ts';
import { magnitude, sizeOf, type SizePrior } from './sizes.ts';

export interface PlacedInstance {
  entity: number;
  instance: number;
  box: Box;
}

interface Item {
  entity: Entity;
  instance: number;
  weight: number;
}

const MARGIN = 0.84;
/** FLUX's token is 16 px: boxes are snapped to it later. */
const TOKEN = 16;
const MIN_PX = 40;

function levels(d: Description): number[] {
  const n = d.entities.length;
  const level = new Array<number>(n).fill(0);
  const below: [number, number][] = [];
  for (const r of d.relations) {
    if (r.kind === 'above') below.push([r.a, r.b]);
  }
  if (d.order === 'y') for (let i = 1; i < n; i++) below.push([i - 1, i]);
  // Longest-path relaxation; a cycle (contradictory text) stops growing after n rounds.
  for (let round = 0; round < n; round++) {
    let changed = false;
    for (const [a, b] of below) {
      if (level[b]! < level[a]! + 1) {
        level[b] = level[a]! + 1;
        changed = true;
      }
    }
    if (!changed) break;
  }
  const vertical = new Set(below.flat());
  for (const r of d.relations) {
    if ((r.kind === 'next' || r.kind === 'between') && !vertical.has(r.a) && !d.entities[r.a]!.anchorV)
      level[r.a] = level[r.b]!;
    if (r.kind === 'left' && !vertical.has(r.a) && !vertical.has(r.b))
      level[r.a] = level[r.b] = Math.max(level[r.a]!, level[r.b]!);
  }
  // Top/bottom anchors outrank relations: a tier in front of the level.
  const tier = (e: Entity) => (e.anchorV === 'top' ? -1 : e.anchorV === 'bottom' ? 1 : 0);
  const keys = d.entities.map((e, i) => [tier(e), level[i]!] as const);
  const distinct = [...new Set(keys.map((k) => `${k[0]}:${k[1]}`))]
    .map((s) => s.split(':').map(Number) as [number, number])
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .map((k) => `${k[0]}:${k[1]}`);
  return keys.map((k) => distinct.indexOf(`${k[0]}:${k[1]}`));
}

/** Orders one row's items: a topological sort of left-of constraints, ties by anchor then mention order. */
function orderRow(items: Item[], d: Description): Item[] {
  const before = items.map(() => new Set<number>());
  const add = (x: number, y: number) => {
    if (x !== y) before[y]!.add(x);
  };
  const ofEntity = (e: number) => items.map((it, i) => (it.entity.index === e ? i : -1)).filter((i) => i >= 0);
  for (const r of d.relations) {
    if (r.kind === 'left') for (const x of ofEntity(r.a)) for (const y of ofEntity(r.b)) add(x, y);
    if (r.kind === 'between') {
      const mid = ofEntity(r.a);
      if (r.c !== undefined) {
        for (const m of mid) {
          for (const x of ofEntity(r.b)) add(x, m);
          for (const y of ofEntity(r.c)) add(m, y);
        }
      } else {
        // "a ball between two dogs": the first half of the group on one side, the rest on the other.
        const group = ofEntity(r.b);
        const half = Math.ceil(group.length / 2);
        for (const m of mid) {
          group.slice(0, half).forEach((x) => add(x, m));
          group.slice(half).forEach((y) => add(m, y));
        }
      }
    }
  }
  if (d.order === 'x') {
    for (let i = 0; i < items.length; i++)
      for (let j = 0; j < items.length; j++) {
        if (items[i]!.entity.index < items[j]!.entity.index) add(i, j);
      }
  }
  const rank = (it: Item) => (it.entity.anchorH === 'left' ? 0 : it.entity.anchorH === 'right' ? 2 : 1);
  items.forEach((it, i) => {
    items.forEach((other, j) => {
      if (rank(it) < rank(other)) add(i, j);
    });
  });
  const done = new Set<number>();
  const out: Item[] = [];
  while (out.length < items.length) {
    const ready = items
      .map((it, i) => [it, i] as const)
      .filter(([, i]) => !done.has(i) && [...before[i]!].every((b) => done.has(b)));
    // A cycle in the constraints: fall back to the first remaining item in mention order.
    const pool = ready.length ? ready : items.map((it, i) => [it, i] as const).filter(([, i]) => !done.has(i));
    pool.sort(([a], [b]) => rank(a) - rank(b) || a.entity.index - b.entity.index || a.instance - b.instance);
    const [it, i] = pool[0]!;
    done.add(i);
    out.push(it);
  }
  return out;
}

type Contact = Extract<Relation, { kind: 'on' | 'under' | 'inside' | 'front' | 'behind' | 'held' }>['kind'];

/** Small things are drawn larger than true scale next to big ones (a cup beside a car is still visible). */
const COMPRESS = 0.5;
/** Against another object (a ball on a table) sizes stay closer to true scale. */
const COMPRESS_CONTACT = 0.35;

function sizeWordFactor(e: Entity): number {
  let f = 1;
  for (const w of e.label.toLowerCase().split(/\s+/))
    if (SIZE_WORDS[w] !== undefined && !/er$/.test(w)) f *= SIZE_WORDS[w]!;
  return f;
}

/** The size an object is drawn at relative to the biggest thing it is laid out with (cm, compressed). */
function effective(p: SizePrior, ref: number, compress = COMPRESS): SizePrior {
  const boost = Math.pow(ref / magnitude(p), compress);
  return { w: p.w * boost, h: p.h * boost };
}

/** Which object each object is in contact with (its parent), and how; cycles and self-references dropped. */
function contacts(d: Description): { parent: (number | undefined)[]; kind: (Contact | undefined)[] } {
  const n = d.entities.length;
  const parent = new Array<number | undefined>(n).fill(undefined);
  const kind = new Array<Contact | undefined>(n).fill(undefined);
  const rootOf = (e: number): number => {
    const seen = new Set<number>();
    let cur = e;
    while (parent[cur] !== undefined && !seen.has(cur)) {
      seen.add(cur);
      cur = parent[cur]!;
    }
    return cur;
  };
  for (const r of d.relations) {
    if (!CONTACT.has(r.kind) || r.a === r.b) continue;
    // "a cup on a book on a table": the second support carries the first one.
    const a = parent[r.a] === undefined ? r.a : rootOf(r.a);
    if (a === r.b || parent[a] !== undefined || rootOf(r.b) === a) continue;
    parent[a] = r.b;
    kind[a] = r.kind as Contact;
  }
  // "two cats on a sofa and a ball between them": the ball is on the sofa too.
  const hasChildren = new Set(parent.filter((p) => p !== undefined));
  for (const r of d.relations) {
    if (r.kind !== 'between' && r.kind !== 'next' && r.kind !== 'left') continue;
    const pairs: [number, number][] =
      r.kind === 'left'
        ? [
            [r.a, r.b],
            [r.b, r.a],
          ]
        : [[r.a, r.b]];
    if (r.kind === 'between' && r.c !== undefined) pairs.push([r.a, r.c]);
    for (const [x, y] of pairs) {
      if (parent[x] !== undefined || hasChildren.has(x) || parent[y] === undefined || kind[y] === 'held') continue;
      if (rootOf(parent[y]!) === x) continue;
      parent[x] = parent[y];
      kind[x] = kind[y];
    }
  }
  return { parent, kind };
}

/** Relations between free objects, with contact-placed objects replaced by the free object they rest on. */
function lifted(d: Description, parent: (number | undefined)[]): Relation[] {
  const root = (e: number): number => {
    let cur = e;
    for (let i = 0; i < d.entities.length && parent[cur] !== undefined; i++) cur = parent[cur]!;
    return cur;
  };
  const out: Relation[] = [];
  for (const r of d.relations) {
    if (CONTACT.has(r.kind)) continue;
    const a = root(r.a),
      b = root(r.b);
    if (a === b) continue;
    if (r.kind === 'between') {
      const c = r.c !== undefined ? root(r.c) : undefined;
      if (c === a) continue;
      out.push({ ...r, a, b, ...(c !== undefined ? { c } : {}) });
    } else out.push({ ...r, a, b });
  }
  return out;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

/** Pixel boxes while laying out; converted to fractions at the end. */
interface Px {
  x: number;
  y: number;
  w: number;
  h: number;
}

export function layoutDescription(d: Description, width: number, height: number): PlacedInstance[] {
  if (!d.entities.length) return [];
  const { parent, kind } = contacts(d);
  const children = (p: number, k?: Contact) =>
    d.entities.filter((e) => parent[e.index] === p && (k === undefined || kind[e.index] === k));
  const free = d.entities.filter((e) => parent[e.index] === undefined);
  const freeSet = new Set(free.map((e) => e.index));
  const dl: Description = { ...d, relations: lifted(d, parent) };
  const rowOf = levels(dl);
  const used = [...new Set(free.map((e) => rowOf[e.index]!))].sort((a, b) => a - b);
  const rowCount = used.length;
  const rows: Item[][] = used.map(() => []);
  for (const e of free) {
    const n = e.group ? 1 : e.count;
    for (let i = 0; i < n; i++)
      rows[used.indexOf(rowOf[e.index]!)]!.push({ entity: e, instance: i, weight: e.group ? 2 : 1 });
  }
  const slotOf = new Map<string, Box>();
  rows.forEach((row, r) => {
    let band: { y: number; h: number };
    if (rowCount === 1) {
      const v = row.every((it) => it.entity.anchorV === 'top')
        ? 'top'
        : row.every((it) => it.entity.anchorV === 'bottom')
          ? 'bottom'
          : 'middle';
      band = v === 'top' ? { y: 0.02, h: 0.5 } : v === 'bottom' ? { y: 0.48, h: 0.5 } : { y: 0.04, h: 0.92 };
    } else band = { y: r / rowCount, h: 1 / rowCount };
    const ordered = orderRow(row, dl);
    let spanX = { x: 0, w: 1 };
    if (ordered.length === 1) {
      const h = ordered[0]!.entity.anchorH;
      spanX =
        h === 'left'
          ? { x: 0.02, w: 0.5 }
          : h === 'right'
            ? { x: 0.48, w: 0.5 }
            : h === 'center'
              ? { x: 0.2, w: 0.6 }
              : { x: 0.04, w: 0.92 };
    }
    const total = ordered.reduce((s, it) => s + it.weight, 0);
    let x = spanX.x;
    for (const it of ordered) {
      const w = (spanX.w * it.weight) / total;
      slotOf.set(`${it.entity.index}:${it.instance}`, { x, y: band.y, w, h: band.h });
      x += w;
    }
  });
  // Objects alone in their row follow the object they sit above or below.
  const alone = (e: number) => freeSet.has(e) && rows[used.indexOf(rowOf[e]!)]!.length === 1 && !d.entities[e]!.anchorH;
  const spanOf = (e: number) => {
    const slots = [...slotOf.entries()].filter(([k]) => k.startsWith(`${e}:`)).map(([, s]) => s);
    return { lo: Math.min(...slots.map((s) => s.x)), hi: Math.max(...slots.map((s) => s.x + s.w)) };
  };
  for (const r of dl.relations) {
    if (r.kind !== 'above' || rowOf[r.a] === rowOf[r.b]) continue;
    const [mover, anchor] =
      alone(r.a) && !alone(r.b)
        ? [r.a, r.b]
        : alone(r.b) && !alone(r.a)
          ? [r.b, r.a]
          : alone(r.a)
            ? [r.a, r.b]
            : [-1, -1];
    if (mover < 0) continue;
    const target = spanOf(anchor);
    const slot = slotOf.get(`${mover}:0`)!;
    const w = Math.min(slot.w, Math.max(target.hi - target.lo, 0.2));
    const cx = (target.lo + target.hi) / 2;
    slotOf.set(`${mover}:0`, { ...slot, x: clamp(cx - w / 2, 0, 1 - w), w });
  }

  // One scale (px per effective cm) for every free object, the largest that fits each in its slot.
  const ref = Math.max(...free.filter((e) => !e.group).map((e) => magnitude(sizeOf(e.head))), 1);
  const dims = new Map<number, SizePrior>();
  for (const e of free) {
    const p = effective(sizeOf(e.head), ref);
    const f = sizeWordFactor(e) * (e.depth === 'back' ? 0.75 : 1);
    dims.set(e.index, { w: p.w * f, h: p.h * f });
  }
  // Room kept in a slot for what rests on top of an object, or stands in front of it.
  const reserve = (e: Entity) => ({
    top: children(e.index, 'on').length ? 0.42 : children(e.index, 'held').length ? 0.1 : 0,
    bottom: children(e.index, 'front').length ? 0.12 : 0,
    side: children(e.index, 'held').length ? 0.2 : 0,
  });
  const inner = (e: Entity, slot: Box): Px => {
    const r = reserve(e);
    const w = slot.w * width * MARGIN * (1 - r.side),
      h = slot.h * height * MARGIN * (1 - r.top - r.bottom);
    return {
      x: slot.x * width + (slot.w * width - w) / 2,
      y: slot.y * height + slot.h * height * ((1 - MARGIN) / 2 + MARGIN * r.top),
      w,
      h,
    };
  };
  let scale = Infinity;
  for (const [key, slot] of slotOf) {
    const e = d.entities[Number(key.split(':')[0])]!;
    if (e.group) continue;
    const room = inner(e, slot),
      p = dims.get(e.index)!;
    scale = Math.min(scale, room.w / p.w, room.h / p.h);
  }
  const px = new Map<string, Px>();
  for (const [key, slot] of slotOf) {
    const e = d.entities[Number(key.split(':')[0])]!;
    const room = inner(e, slot);
    let w: number, h: number;
    if (e.group) {
      // A crowd fills its slot (with the shape of one of its members, stretched at most 1.8×).
      const aspect = sizeOf(e.head).w / sizeOf(e.head).h;
      [w, h] = [room.w, room.h];
      if (w / h > aspect * 1.8) w = h * aspect * 1.8;
      if (h / w > 1.8 / aspect) h = (w * 1.8) / aspect;
    } else {
      const p = dims.get(e.index)!;
      [w, h] = [p.w * scale, p.h * scale];
    }
    const x = room.x + (room.w - w) / 2;
    // On the ground line of the slot, unless it floats near the top of the picture.
    const y = e.anchorV === 'top' ? room.y + (room.h - h) / 2 : room.y + room.h - h;
    px.set(key, { x, y, w, h });
  }

  // Contact: each object against the box of its parent, parents first.
  const placedEntities = new Set(free.map((e) => e.index));
  for (let guard = 0; guard < d.entities.length && placedEntities.size < d.entities.length; guard++) {
    for (const p of d.entities) {
      if (!placedEntities.has(p.index)) continue;
      for (const k of ['on', 'under', 'inside', 'front', 'behind', 'held'] as Contact[]) {
        const kids = children(p.index, k).filter((c) => !placedEntities.has(c.index));
        if (!kids.length) continue;
        placeAgainst(p, k, kids, px, d, width);
        for (const c of kids) placedEntities.add(c.index);
      }
    }
  }

  const placed: PlacedInstance[] = [];
  for (const e of d.entities) {
    const n = e.group ? 1 : e.count;
    for (let i = 0; i < n; i++) {
      const b = px.get(`${e.index}:${i}`);
      if (!b) continue;
      const w = Math.min(b.w, width),
        h = Math.min(b.h, height);
      const x = clamp(b.x, 0, width - w),
        y = clamp(b.y, 0, height - h);
      placed.push({ entity: e.index, instance: i, box: { x: x / width, y: y / height, w: w / width, h: h / height } });
    }
  }
  return placed;
}

/** The union of an entity's instance boxes (what its dependents are placed against). */
function unionOf(e: Entity, px: Map<string, Px>): Px[] {
  const out: Px[] = [];
  for (let i = 0; i < (e.group ? 1 : e.count); i++) {
    const b = px.get(`${e.index}:${i}`);
    if (b) out.push(b);
  }
  return out;
}

/**
 * Places `kids` (all in the same contact relation with `p`) against p's boxes. With several instances of p
 * ("a cat on each of two chairs" reads as one per box), kids go round-robin over them; kids on one box share
 * its width in the order the text gives.
 */
function placeAgainst(p: Entity, k: Contact, kids: Entity[], px: Map<string, Px>, d: Description, width: number): void {
  const targets = unionOf(p, px);
  if (!targets.length) return;
  const items: Item[] = kids.flatMap((e) =>
    Array.from({ length: e.group ? 1 : e.count }, (_, instance) => ({ entity: e, instance, weight: 1 })),
  );
  const ordered = orderRow(items, d);
  const perTarget: Item[][] = targets.map(() => []);
  ordered.forEach((it, i) => perTarget[targets.length === 1 ? 0 : i % targets.length]!.push(it));
  const pm = magnitude(sizeOf(p.head));
  perTarget.forEach((group, t) => {
    if (!group.length) return;
    const P = targets[t]!;
    // Pixels per cm of the parent as drawn, then each kid at its own (compressed) size relative to it.
    const ppc = Math.sqrt((P.w * P.h) / (sizeOf(p.head).w * sizeOf(p.head).h));
    const sizes = group.map((it) => {
      const e = effective(sizeOf(it.entity.head), Math.max(pm, magnitude(sizeOf(it.entity.head))), COMPRESS_CONTACT);
      const f = sizeWordFactor(it.entity) * (k === 'behind' ? 0.85 : 1);
      return { w: e.w * ppc * f, h: e.h * ppc * f };
    });
    // Limits of each relation, relative to the parent box and the picture.
    const limit = {
      on: { w: 0.9, h: 1.2, across: 0.92 },
      under: { w: 0.85, h: 0.7, across: 0.9 },
      inside: { w: 0.7, h: 0.6, across: 0.8 },
      front: { w: 1.0, h: 0.95, across: 1.1 },
      behind: { w: 1.6, h: 1.6, across: 1.6 },
      held: { w: 0.6, h: 0.55, across: 1.2 },
    }[k];
    const ground = {
      on: P.y + 0.4 * P.h,
      under: P.y + P.h,
      inside: P.y + (P.h > 1.3 * P.w ? 0.55 : 0.92) * P.h,
      front: 0,
      behind: P.y + 0.55 * P.h,
      held: 0,
    }[k];
    const totalW = sizes.reduce((s, z) => s + z.w, 0) * 1.08;
    let f = Math.min(1, (P.w * limit.across) / totalW, width / totalW);
    for (const z of sizes) f = Math.min(f, (P.w * limit.w) / z.w, (P.h * limit.h) / z.h);
    // At least a few tokens each way where the parent allows it: the 16-px grid must not swallow the relation.
    for (const z of sizes) {
      // In front of a thin thing, a flat thing may be wider than it: overlapping it matters more.
      const wCap = k === 'front' || k === 'behind' ? width / z.w : (P.w * limit.w) / z.w;
      f = Math.max(f, Math.min(MIN_PX / Math.min(z.w, z.h), wCap, (P.h * limit.h) / z.h));
    }
    if (k === 'on' || k === 'behind') for (const z of sizes) f = Math.min(f, (ground * 0.98) / z.h);
    if (k === 'inside') for (const z of sizes) f = Math.min(f, ((ground - P.y) * 0.95) / z.h);
    const ws = sizes.map((z) => z.w * f),
      hs = sizes.map((z) => z.h * f);
    const span = ws.reduce((s, w) => s + w, 0) * 1.08;
    const cx = P.x + P.w / 2;
    let x = cx - span / 2 + ws[0]! * 0.04;
    group.forEach((it, i) => {
      const w = ws[i]!,
        h = hs[i]!;
      let box: Px;
      if (k === 'held') {
        // At the holder's hand: its side, half-way down, overlapping its edge.
        const side = i % 2 === 0 ? 1 : -1;
        const hx = side > 0 ? P.x + P.w * 0.85 : P.x + P.w * 0.15;
        box = { x: hx - w / 2, y: P.y + 0.5 * P.h - h / 2, w, h };
      } else if (k === 'front') {
        // Lower in the picture than P (nearer), and still overlapping P's lower edge; a token or more lower.
        const drop = Math.max(TOKEN, Math.min(0.1 * P.h, 0.45 * h));
        box = { x, y: P.y + P.h + drop - h, w, h };
      } else {
        box = { x, y: ground - h, w, h };
      }
      px.set(`${it.entity.index}:${it.instance}`, box);
      x += w * 1.08;
    });
  });
}
