import { describe, expect, it } from 'vitest';
import { captionCases } from '../../eval/captions.ts';
import { evalCases, type EvalCase } from '../../eval/cases.ts';
import { evaluate } from '../../eval/planner.ts';
import { names, score } from '../../eval/score.ts';
import { planOffline } from '../../src/planner/offline.ts';
import type { Region, Scene } from '../../src/scene/schema.ts';

const box = (x: number, y: number) => ({ x, y, w: 0.2, h: 0.2 });
const scene = (regions: Omit<Region, 'id' | 'prompt'>[], exclude: string[] = []): Scene => ({
  width: 512,
  height: 512,
  prompt: 'p',
  background: '',
  exclude,
  regions: regions.map((r, i) => ({ ...r, id: `r${i + 1}`, prompt: r.label })),
});

describe('planner evaluation: the scorer applies LMD stage-1 rules', () => {
  it('matches object names as whole words, singular or plural', () => {
    expect(names('a red car', 'car')).toBe(true);
    expect(names('a carrot', 'car')).toBe(false);
    expect(names('two teddy bears', 'teddy bear')).toBe(true);
    expect(names('a wine glass', 'glass')).toBe(true);
  });
  it('counts boxes per object', () => {
    const c: EvalCase = {
      id: 'x',
      split: 'dev',
      category: 'numeracy',
      prompt: 'three cats',
      objects: [{ name: 'cat', count: 3 }],
    };
    expect(
      score(
        c,
        scene([
          { label: 'a cat', box: box(0, 0) },
          { label: 'a cat', box: box(0.3, 0) },
        ]),
      ).ok,
    ).toBe(false);
    expect(
      score(
        c,
        scene([
          { label: 'a cat', box: box(0, 0) },
          { label: 'a cat', box: box(0.3, 0) },
          { label: 'a cat', box: box(0.6, 0) },
        ]),
      ).ok,
    ).toBe(true);
  });
  it('binds attributes to their own object only', () => {
    const c: EvalCase = {
      id: 'x',
      split: 'dev',
      category: 'attribution',
      prompt: 'a red car and a blue dog',
      objects: [
        { name: 'car', count: 1, attributes: ['red'] },
        { name: 'dog', count: 1, attributes: ['blue'] },
      ],
    };
    expect(
      score(
        c,
        scene([
          { label: 'a red car', box: box(0, 0) },
          { label: 'a blue dog', box: box(0.5, 0) },
        ]),
      ).ok,
    ).toBe(true);
    expect(
      score(
        c,
        scene([
          { label: 'a blue car', box: box(0, 0) },
          { label: 'a red dog', box: box(0.5, 0) },
        ]),
      ).why.join(),
    ).toMatch(/lacks "red"/);
    expect(
      score(
        c,
        scene([
          { label: 'a red and blue car', box: box(0, 0) },
          { label: 'a blue dog', box: box(0.5, 0) },
        ]),
      ).why.join(),
    ).toMatch(/belongs to another object/);
  });
  it('judges left/right/above/below on box centres', () => {
    const c: EvalCase = {
      id: 'x',
      split: 'dev',
      category: 'spatial',
      prompt: 'a cat above a dog',
      objects: [
        { name: 'cat', count: 1 },
        { name: 'dog', count: 1 },
      ],
      relations: [{ a: 'cat', rel: 'above', b: 'dog' }],
    };
    expect(
      score(
        c,
        scene([
          { label: 'a cat', box: box(0, 0) },
          { label: 'a dog', box: box(0, 0.5) },
        ]),
      ).ok,
    ).toBe(true);
    expect(
      score(
        c,
        scene([
          { label: 'a cat', box: box(0, 0.6) },
          { label: 'a dog', box: box(0, 0.1) },
        ]),
      ).ok,
    ).toBe(false);
  });
  it('a negated object has no box and is excluded', () => {
    const c: EvalCase = {
      id: 'x',
      split: 'dev',
      category: 'negation',
      prompt: 'a park without dogs',
      objects: [],
      negated: ['dog'],
    };
    expect(score(c, scene([], ['dogs'])).ok).toBe(true);
    expect(score(c, scene([], [])).why.join()).toMatch(/not in exclude/);
    expect(score(c, scene([{ label: 'a dog', box: box(0, 0) }], ['dogs'])).why.join()).toMatch(/has 1 box/);
  });
});

describe('planner evaluation: LayoutGPT rules for comparisons and words that are not things', () => {
  const c: EvalCase = {
    id: 'x',
    split: 'comparisons',
    category: 'comparison',
    prompt: 'more cars than trucks',
    objects: [],
    compare: { a: 'car', rel: 'more', b: 'truck' },
  };
  const boxes = (label: string, n: number) => Array.from({ length: n }, (_, i) => ({ label, box: box(i * 0.1, 0) }));
  it('judges the relation between the two counts, and needs both objects', () => {
    expect(score(c, scene([...boxes('a car', 3), ...boxes('a truck', 2)])).ok).toBe(true);
    expect(score(c, scene([...boxes('a car', 2), ...boxes('a truck', 2)])).why.join()).toMatch(
      /car more than truck: 2 vs 2/,
    );
    expect(score(c, scene(boxes('a car', 3))).ok).toBe(false);
    const twice = { ...c, compare: { a: 'car', rel: 'times' as const, k: 2, b: 'truck' } };
    expect(score(twice, scene([...boxes('a car', 4), ...boxes('a truck', 2)])).ok).toBe(true);
    expect(score(twice, scene([...boxes('a car', 3), ...boxes('a truck', 2)])).ok).toBe(false);
  });
  it("a word that is not a thing must not be a region's noun", () => {
    const nap = { ...c, compare: undefined, absent: ['nap', 'back'] };
    expect(score(nap, scene([{ label: 'a dog', box: box(0, 0) }])).ok).toBe(true);
    expect(score(nap, scene([{ label: 'a nap', box: box(0, 0) }])).why.join()).toMatch(/"nap" is not a thing/);
    expect(score(nap, scene([{ label: 'the back of a truck', box: box(0, 0) }])).ok).toBe(false);
  });
});

describe('planner evaluation: the offline planner', () => {
  const { dev, heldout } = evalCases();
  it('has at least 400 prompts to tune on, and a held-out split', () => {
    expect(dev.length).toBeGreaterThanOrEqual(400);
    expect(heldout.length).toBeGreaterThanOrEqual(200);
    expect(new Set(dev.map((c) => c.prompt)).size).toBeGreaterThan(350);
  });
  const check = async (cases: EvalCase[], floor: number) => {
    const r = await evaluate('x', cases, async (t) => planOffline(t).scene);
    for (const s of r.scores) {
      const why = r.failures
        .filter((f) => f.c.category === s.category)
        .slice(0, 3)
        .map((f) => `${f.c.prompt}: ${f.why.join('; ')}`)
        .join(' | ');
      expect(s.passed / s.total, `${s.category}: ${why}`).toBeGreaterThanOrEqual(floor);
    }
  };
  it('scores at least 97% in every category on the split it is tuned on', () => check(dev, 0.97));
  // The held-out split is never tuned on; this only guards against a regression (see the README for its score).
  it('scores at least 90% in every category on the held-out split', () => check(heldout, 0.9));
  const { captions, comparisons } = captionCases();
  it('has at least 300 captions and 150 comparison and crowd sentences', () => {
    expect(captions.length).toBeGreaterThanOrEqual(300);
    expect(comparisons.length).toBeGreaterThanOrEqual(150);
    expect(new Set(captions.map((c) => c.prompt)).size).toBeGreaterThan(250);
  });
  // The goals: counting ≥ 95% with every kind ≥ 90%, spatial ≥ 97%.
  it('scores at least 95% on captions and comparisons, every kind', () => check([...captions, ...comparisons], 0.95));
});
