/** Where to put a new or moved box in an existing scene: near a named spot, away from the other boxes. */
import type { Box, Scene } from '../scene/schema.ts';

export type Where =
  | { kind: 'anywhere' }
  | { kind: 'spot'; h?: 'left' | 'center' | 'right'; v?: 'top' | 'middle' | 'bottom'; corner?: boolean }
  | { kind: 'near'; of: Box; side?: 'left' | 'right' | 'above' | 'below' | 'on' }
  | { kind: 'between'; a: Box; b: Box };

function overlap(a: Box, b: Box): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

/** A size for a new box: a bit smaller than the boxes already there, within sensible bounds. */
export function defaultSize(scene: Scene, scale = 1): { w: number; h: number } {
  const boxes = scene.regions.map((r) => r.box);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const w = boxes.length ? median(boxes.map((b) => b.w)) * 0.8 : 0.35;
  const h = boxes.length ? median(boxes.map((b) => b.h)) * 0.8 : 0.35;
  return { w: clamp(w * scale, 0.1, 0.45), h: clamp(h * scale, 0.1, 0.45) };
}

function target(where: Where, size: { w: number; h: number }): { x: number; y: number } | undefined {
  switch (where.kind) {
    case 'anywhere':
      return undefined;
    case 'spot': {
      const edge = where.corner ? 0.14 : 0.2;
      const x = where.h === 'left' ? edge : where.h === 'right' ? 1 - edge : 0.5;
      const y = where.v === 'top' ? edge : where.v === 'bottom' ? 1 - edge : 0.5;
      return { x, y };
    }
    case 'near': {
      const c = { x: where.of.x + where.of.w / 2, y: where.of.y + where.of.h / 2 };
      const gap = 0.03;
      switch (where.side) {
        case 'left':
          return { x: where.of.x - gap - size.w / 2, y: c.y };
        case 'right':
          return { x: where.of.x + where.of.w + gap + size.w / 2, y: c.y };
        case 'above':
          return { x: c.x, y: where.of.y - gap - size.h / 2 };
        case 'below':
          return { x: c.x, y: where.of.y + where.of.h + gap + size.h / 2 };
        case 'on':
          return { x: c.x, y: where.of.y + size.h * 0.35 };
        default: {
          // "next to": whichever side has more room.
          const right = 1 - (where.of.x + where.of.w),
            left = where.of.x;
          return right >= left
            ? { x: where.of.x + where.of.w + gap + size.w / 2, y: c.y }
            : { x: where.of.x - gap - size.w / 2, y: c.y };
        }
      }
    }
    case 'between':
      return {
        x: (where.a.x + where.a.w / 2 + where.b.x + where.b.w / 2) / 2,
        y: (where.a.y + where.a.h / 2 + where.b.y + where.b.h / 2) / 2,
      };
  }
}

/**
 * The box of the given size whose centre is nearest the target spot while overlapping the other boxes as
 * little as possible (overlap weighs far more than distance); with no target, the emptiest place.
 */
export function placeBox(scene: Scene, where: Where, size: { w: number; h: number }, ignore: string[] = []): Box {
  const others = scene.regions.filter((r) => !ignore.includes(r.id)).map((r) => r.box);
  if (where.kind === 'between') {
    // Fit between the two: no wider than the gap between their inner edges, when there is one.
    const gapX = Math.max(where.a.x, where.b.x) - Math.min(where.a.x + where.a.w, where.b.x + where.b.w);
    if (gapX > 0.08) {
      const w = Math.min(size.w, gapX * 0.8);
      size = { w, h: Math.min(size.h, Math.max(w * 1.2, 0.1)) };
    }
  }
  const t = target(where, size);
  const allowOverlap = where.kind === 'near' && where.side === 'on';
  let best: Box | undefined,
    bestScore = Infinity;
  const step = 1 / 64;
  for (let y = 0; y + size.h <= 1 + 1e-9; y += step) {
    for (let x = 0; x + size.w <= 1 + 1e-9; x += step) {
      const b = { x, y, w: size.w, h: size.h };
      const ov =
        others.reduce((s, o) => s + (allowOverlap && where.kind === 'near' && o === where.of ? 0 : overlap(b, o)), 0) /
        (size.w * size.h);
      const cx = x + size.w / 2,
        cy = y + size.h / 2;
      const dist = t
        ? Math.hypot(cx - t.x, cy - t.y)
        : -Math.min(1, ...others.map((o) => Math.hypot(cx - (o.x + o.w / 2), cy - (o.y + o.h / 2)))) * 0.5 +
          Math.hypot(cx - 0.5, cy - 0.5) * 0.1;
      const score = ov * 4 + dist;
      if (score < bestScore) [best, bestScore] = [b, score];
    }
  }
  return best ?? { x: clamp(0.5 - size.w / 2, 0, 1), y: clamp(0.5 - size.h / 2, 0, 1), w: size.w, h: size.h };
}

/** A box grown or shrunk around its centre, kept inside the image. */
export function scaleBox(b: Box, factor: number): Box {
  const w = clamp(b.w * factor, 0.05, 1),
    h = clamp(b.h * factor, 0.05, 1);
  const cx = b.x + b.w / 2,
    cy = b.y + b.h / 2;
  return { x: clamp(cx - w / 2, 0, 1 - w), y: clamp(cy - h / 2, 0, 1 - h), w, h };
}
