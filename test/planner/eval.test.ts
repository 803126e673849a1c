import { describe, expect, it } from 'vitest';
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
});
