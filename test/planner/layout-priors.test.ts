import { describe, expect, it } from 'vitest';
import { rng } from '../../eval/cases.ts';
import { PLACES } from '../../src/planner/lexicon.ts';
import { planOffline } from '../../src/planner/offline.ts';
import { knownObjects, magnitude, sizeOf } from '../../src/planner/sizes.ts';
import type { Box, Region } from '../../src/scene/schema.ts';

// Property checks: for random pairs of objects drawn from the size lexicon, the boxes of "a A <relation> a B"
// satisfy what the relation means, at three image shapes, and sizes follow the priors.

const SHAPES = [
  { width: 1024, height: 1024 },
  { width: 1344, height: 768 },
  { width: 768, height: 1344 },
];

const regionOf = (regions: Region[], noun: string) => regions.find((r) => new RegExp(`\\b${noun}$`).test(r.label));

/** Nouns the planner reads as one object each in "a X and a cat" (colour words like "orange" are left out). */
const NOUNS = knownObjects().filter((n) => {
  if (n === 'cat' || PLACES.has(n)) return false;
  const r = planOffline(`a ${n} and a cat`).scene.regions;
  return r.length === 2 && regionOf(r, n) !== undefined && regionOf(r, 'cat') !== undefined;
});

function pairs(seed: number, count: number): [string, string][] {
  const next = rng(seed);
  const out: [string, string][] = [];
  while (out.length < count) {
    const a = NOUNS[Math.floor(next() * NOUNS.length)]!,
      b = NOUNS[Math.floor(next() * NOUNS.length)]!;
    if (a !== b) out.push([a, b]);
  }
  return out;
}

const px = (b: Box, s: { width: number; height: number }) => ({
  x: b.x * s.width,
  y: b.y * s.height,
  w: b.w * s.width,
  h: b.h * s.height,
});
const cy = (b: Box) => b.y + b.h / 2;
const bottom = (b: Box) => b.y + b.h;
const overlap = (a: Box, b: Box) =>
  Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x) > 1e-9 &&
  Math.min(bottom(a), bottom(b)) - Math.max(a.y, b.y) > 1e-9;
const EPS = 1e-9;

function boxes(text: string, a: string, b: string, shape: { width: number; height: number }): { A: Box; B: Box } {
  const regions = planOffline(text, shape).scene.regions;
  const A = regionOf(regions, a),
    B = regionOf(regions, b);
  expect(A, `${text}: no box for ${a} (${regions.map((r) => r.label).join(', ')})`).toBeDefined();
  expect(B, `${text}: no box for ${b} (${regions.map((r) => r.label).join(', ')})`).toBeDefined();
  return { A: A!.box, B: B!.box };
}

describe('offline layout: size priors', () => {
  it('the lexicon is large enough to draw from', () => {
    expect(NOUNS.length).toBeGreaterThan(250);
  });

  it.each(SHAPES)('a smaller thing gets a smaller box, at %o', (shape) => {
    for (const [a, b] of pairs(1 + shape.width, 150)) {
      const { A, B } = boxes(`a ${a} and a ${b}`, a, b, shape);
      const ma = magnitude(sizeOf(a)),
        mb = magnitude(sizeOf(b));
      const pa = px(A, shape),
        pb = px(B, shape);
      // Clear differences only: the token grid rounds boxes by up to 16 px.
      if (ma < mb * 0.7) expect(pa.w * pa.h, `a ${a} should be smaller than a ${b}`).toBeLessThan(pb.w * pb.h);
      if (mb < ma * 0.7) expect(pb.w * pb.h, `a ${b} should be smaller than a ${a}`).toBeLessThan(pa.w * pa.h);
    }
  });

  it.each(SHAPES)('wide things are wider than tall and tall things taller than wide, in pixels, at %o', (shape) => {
    for (const n of NOUNS) {
      const s = sizeOf(n);
      const r = regionOf(planOffline(`a ${n}`, shape).scene.regions, n)!;
      const p = px(r.box, shape);
      if (s.w >= 1.6 * s.h) expect(p.w, `a ${n} is wide`).toBeGreaterThan(p.h);
      if (s.h >= 1.6 * s.w) expect(p.h, `a ${n} is tall`).toBeGreaterThan(p.w);
    }
  });

  it('two cats on a sofa and a red ball between them: the ball is smaller than the cats, the cats on the sofa', () => {
    const s = planOffline('two cats on a sofa and a red ball between them').scene;
    const cats = s.regions.filter((r) => r.label === 'a cat').sort((x, y) => x.box.x - y.box.x);
    const ball = s.regions.find((r) => r.label === 'a red ball')!;
    const sofa = s.regions.find((r) => r.label === 'a sofa')!;
    expect(cats).toHaveLength(2);
    for (const c of cats) {
      expect(ball.box.w * ball.box.h).toBeLessThan(c.box.w * c.box.h);
      expect(ball.box.h).toBeLessThan(c.box.h);
      expect(overlap(c.box, sofa.box)).toBe(true);
      expect(cy(c.box)).toBeLessThan(cy(sofa.box));
    }
    expect(cats[0]!.box.x + cats[0]!.box.w / 2).toBeLessThan(ball.box.x + ball.box.w / 2);
    expect(ball.box.x + ball.box.w / 2).toBeLessThan(cats[1]!.box.x + cats[1]!.box.w / 2);
    expect(sofa.box.w * 1024).toBeGreaterThan(sofa.box.h * 1024);
    // The sofa is boxed, so the background does not paint another one.
    expect(s.background).not.toMatch(/sofa/);
  });
});

describe('offline layout: contact relations hold on the boxes for random pairs', () => {
  const cases: [string, (a: string, b: string) => string, (A: Box, B: Box) => void][] = [
    [
      'on',
      (a, b) => `a ${a} on a ${b}`,
      (A, B) => {
        // Resting on B's top surface: above its centre, overlapping it, within its width.
        expect(cy(A)).toBeLessThan(cy(B));
        expect(overlap(A, B)).toBe(true);
        expect(bottom(A)).toBeGreaterThan(B.y - EPS);
        expect(bottom(A)).toBeLessThan(cy(B) + EPS);
        expect(A.x).toBeGreaterThanOrEqual(B.x - EPS);
        expect(A.x + A.w).toBeLessThanOrEqual(B.x + B.w + EPS);
      },
    ],
    [
      'under',
      (a, b) => `a ${a} under a ${b}`,
      (A, B) => {
        expect(cy(A)).toBeGreaterThan(cy(B));
        expect(overlap(A, B)).toBe(true);
        expect(A.x).toBeGreaterThanOrEqual(B.x - EPS);
        expect(A.x + A.w).toBeLessThanOrEqual(B.x + B.w + EPS);
      },
    ],
    [
      'inside',
      (a, b) => `a ${a} inside a ${b}`,
      (A, B) => {
        expect(A.x).toBeGreaterThanOrEqual(B.x - EPS);
        expect(A.y).toBeGreaterThanOrEqual(B.y - EPS);
        expect(A.x + A.w).toBeLessThanOrEqual(B.x + B.w + EPS);
        expect(bottom(A)).toBeLessThanOrEqual(bottom(B) + EPS);
        expect(A.w * A.h).toBeLessThan(B.w * B.h);
      },
    ],
    [
      'in front of',
      (a, b) => `a ${a} in front of a ${b}`,
      (A, B) => {
        // Nearer the viewer: it stands lower in the picture and covers part of B.
        expect(bottom(A)).toBeGreaterThan(bottom(B));
        expect(overlap(A, B)).toBe(true);
      },
    ],
    [
      'behind',
      (a, b) => `a ${a} behind a ${b}`,
      (A, B) => {
        expect(bottom(A)).toBeLessThan(bottom(B));
        expect(overlap(A, B)).toBe(true);
      },
    ],
    [
      'held by',
      (a, b) => `a ${a} held by a ${b}`,
      (A, B) => {
        expect(overlap(A, B)).toBe(true);
        expect(A.w * A.h).toBeLessThan(B.w * B.h);
      },
    ],
  ];
  it.each(cases)('%s', (name, sentence, holds) => {
    let n = 0;
    for (const shape of SHAPES) {
      for (const [a, b] of pairs(name.length * 7919 + shape.height, 60)) {
        const text = sentence(a, b);
        const { A, B } = boxes(text, a, b, shape);
        try {
          holds(A, B);
        } catch (e) {
          throw new Error(
            `${text} at ${shape.width}×${shape.height}: ${(e as Error).message}\nA=${JSON.stringify(A)} B=${JSON.stringify(B)}`,
            { cause: e },
          );
        }
        n++;
      }
    }
    expect(n).toBe(180);
  });

  it('holding makes two boxes, the held thing at the hand, and keeps the action in the prompt', () => {
    const s = planOffline('a girl holding a red balloon').scene;
    expect(s.regions.map((r) => r.label)).toEqual(['a girl', 'a red balloon']);
    expect(s.regions[0]!.prompt).toMatch(/holding a red balloon/);
    expect(overlap(s.regions[0]!.box, s.regions[1]!.box)).toBe(true);
  });

  it('a chain of supports: a cup on a book on a table', () => {
    const s = planOffline('a cup on a book on a table').scene;
    const [cup, book, table] = ['cup', 'book', 'table'].map((n) => regionOf(s.regions, n)!.box);
    expect(cy(cup!)).toBeLessThan(cy(book!));
    expect(cy(book!)).toBeLessThan(cy(table!));
    expect(overlap(cup!, book!) && overlap(book!, table!)).toBe(true);
  });

  it('places stay backgrounds; clothing after "in" stays in the label', () => {
    expect(planOffline('a yellow duck on a pond').scene.regions.map((r) => r.label)).toEqual(['a yellow duck']);
    expect(planOffline('a woman in a red dress').scene.regions.map((r) => r.label)).toEqual(['a woman in a red dress']);
  });
});
