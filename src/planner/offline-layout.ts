/**
 * Boxes for the offline planner: objects → rows (by above/below relations and top/bottom anchors) → an order
 * inside each row (left-of, between, left/right anchors, mention order) → equal slots with margins, so boxes
 * never overlap and keep gaps. Objects related vertically but alone in their row are aligned in x.
 */
import type { Box } from '../scene/schema.ts';
import { aspectOf, SMALL_THINGS } from './lexicon.ts';
import type { Description, Entity } from './offline-parse.ts';

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

function levels(d: Description): number[] {
  const n = d.entities.length;
  const level = new Array<number>(n).fill(0);
  const below: [number, number][] = [];
  for (const r of d.relations) {
    if (r.kind === 'above') below.push([r.a, r.b]);
    if (r.kind === 'front') below.push([r.b, r.a]);
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
    if ((r.kind === 'next' || r.kind === 'between') && !vertical.has(r.a) && !d.entities[r.a]!.anchorV) level[r.a] = level[r.b]!;
    if (r.kind === 'left' && !vertical.has(r.a) && !vertical.has(r.b)) level[r.a] = level[r.b] = Math.max(level[r.a]!, level[r.b]!);
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
    for (let i = 0; i < items.length; i++) for (let j = 0; j < items.length; j++) {
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

function fit(slot: Box, aspect: number, width: number, height: number, scale: number): Box {
  let wPx = slot.w * width * MARGIN * scale;
  let hPx = slot.h * height * MARGIN * scale;
  // Keep boxes from getting much flatter or thinner than the thing they hold.
  const stretch = 1.8;
  if (wPx / hPx > aspect * stretch) wPx = hPx * aspect * stretch;
  if (hPx / wPx > stretch / aspect) hPx = (wPx * stretch) / aspect;
  const w = wPx / width, h = hPx / height;
  return { x: slot.x + (slot.w - w) / 2, y: slot.y + (slot.h - h) / 2, w, h };
}

export function layoutDescription(d: Description, width: number, height: number): PlacedInstance[] {
  if (!d.entities.length) return [];
  const rowOf = levels(d);
  const rowCount = Math.max(...rowOf) + 1;
  const rows: Item[][] = Array.from({ length: rowCount }, () => []);
  for (const e of d.entities) {
    const n = e.group ? 1 : e.count;
    for (let i = 0; i < n; i++) rows[rowOf[e.index]!]!.push({ entity: e, instance: i, weight: e.group ? 2 : 1 });
  }
  const placed: PlacedInstance[] = [];
  const slotOf = new Map<string, Box>();
  rows.forEach((row, r) => {
    if (!row.length) return;
    let band: { y: number; h: number };
    if (rowCount === 1) {
      const v = row.every((it) => it.entity.anchorV === 'top') ? 'top' : row.every((it) => it.entity.anchorV === 'bottom') ? 'bottom' : 'middle';
      band = v === 'top' ? { y: 0.02, h: 0.5 } : v === 'bottom' ? { y: 0.48, h: 0.5 } : { y: 0.08, h: 0.84 };
    } else band = { y: r / rowCount, h: 1 / rowCount };
    const ordered = orderRow(row, d);
    let spanX = { x: 0, w: 1 };
    if (ordered.length === 1) {
      const h = ordered[0]!.entity.anchorH;
      spanX = h === 'left' ? { x: 0.02, w: 0.5 } : h === 'right' ? { x: 0.48, w: 0.5 } : h === 'center' ? { x: 0.2, w: 0.6 } : { x: 0.1, w: 0.8 };
    }
    const total = ordered.reduce((s, it) => s + it.weight, 0);
    let x = spanX.x;
    for (const it of ordered) {
      const w = (spanX.w * it.weight) / total;
      const slot = { x, y: band.y, w, h: band.h };
      x += w;
      slotOf.set(`${it.entity.index}:${it.instance}`, slot);
    }
  });
  // Objects alone in their row follow the object they sit above, below, in front of or behind.
  const alone = (e: number) => rows[rowOf[e]!]!.length === 1 && !d.entities[e]!.anchorH;
  const centreX = (e: number) => {
    const slots = [...slotOf.entries()].filter(([k]) => k.startsWith(`${e}:`)).map(([, s]) => s);
    const lo = Math.min(...slots.map((s) => s.x)), hi = Math.max(...slots.map((s) => s.x + s.w));
    return { lo, hi };
  };
  for (const r of d.relations) {
    if (r.kind !== 'above' && r.kind !== 'front') continue;
    if (rowOf[r.a] === rowOf[r.b]) continue;
    const [mover, anchor] = alone(r.a) && !alone(r.b) ? [r.a, r.b] : alone(r.b) && !alone(r.a) ? [r.b, r.a] : alone(r.a) ? [r.a, r.b] : [-1, -1];
    if (mover < 0) continue;
    const target = centreX(anchor);
    const slot = slotOf.get(`${mover}:0`)!;
    const w = Math.min(slot.w, Math.max(target.hi - target.lo, 0.2));
    const cx = (target.lo + target.hi) / 2;
    slotOf.set(`${mover}:0`, { ...slot, x: Math.min(Math.max(cx - w / 2, 0), 1 - w), w });
  }
  for (const e of d.entities) {
    const n = e.group ? 1 : e.count;
    for (let i = 0; i < n; i++) {
      const slot = slotOf.get(`${e.index}:${i}`)!;
      let scale = SMALL_THINGS.has(e.head) && !e.group ? 0.72 : 1;
      if (e.depth === 'back') scale *= 0.75;
      const box = fit(slot, aspectOf(e.head), width, height, scale);
      if (e.depth === 'back') box.y = Math.max(slot.y, box.y - slot.h * 0.1);
      if (e.depth === 'front') box.y = Math.min(slot.y + slot.h - box.h, box.y + slot.h * 0.06);
      placed.push({ entity: e.index, instance: i, box });
    }
  }
  return placed;
}
