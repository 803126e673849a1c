import { describe, expect, it } from 'vitest';
import { describePosition, resolveReference } from '../../src/planner/resolve.ts';
import type { Scene } from '../../src/scene/schema.ts';

const box = (x: number, y: number, w = 0.2, h = 0.3) => ({ x, y, w, h });
const scene: Scene = {
  width: 1024,
  height: 1024,
  prompt: 'a room',
  background: 'a room',
  exclude: [],
  regions: [
    { id: 'r1', label: 'a tabby cat', prompt: 'a tabby cat', box: box(0.05, 0.5) },
    { id: 'r2', label: 'a black cat', prompt: 'a black cat', box: box(0.7, 0.5) },
    { id: 'r3', label: 'a red mug', prompt: 'a red mug', box: box(0.05, 0.1, 0.1, 0.1) },
    { id: 'r4', label: 'a blue mug', prompt: 'a blue mug', box: box(0.3, 0.1, 0.1, 0.1) },
    { id: 'r5', label: 'a green mug', prompt: 'a green mug', box: box(0.55, 0.1, 0.1, 0.1) },
    { id: 'r6', label: 'a dog', prompt: 'a big dog', box: box(0.3, 0.55, 0.3, 0.4) },
    { id: 'r7', label: 'a dog', prompt: 'a small dog', box: box(0.8, 0.85, 0.1, 0.1) },
  ],
};

describe('resolver: unambiguous references', () => {
  it.each([
    ['the left cat', 'r1'],
    ['the cat on the right', 'r2'],
    ['the rightmost cat', 'r2'],
    ['the black cat', 'r2'],
    ['the kitten on the left', 'r1'],
    ['the second mug from the right', 'r4'],
    ['the second mug from the left', 'r4'],
    ['the first mug', 'r3'],
    ['the last mug', 'r5'],
    ['the middle mug', 'r4'],
    ['the bigger dog', 'r6'],
    ['the smallest dog', 'r7'],
    ['the top left one', 'r3'],
    ['the red one', 'r3'],
    ['The Blue Mug', 'r4'],
    ['the dog at the bottom right', 'r7'],
    ["the black cat's", 'r2'],
  ])('%s → %s', (phrase, id) => {
    expect(resolveReference(scene, phrase)).toEqual({ kind: 'unique', id });
  });
  it('the one on top, when one thing is highest', () => {
    const s: Scene = {
      ...scene,
      regions: [scene.regions[0]!, { ...scene.regions[2]!, box: box(0.4, 0.05, 0.1, 0.1) }, scene.regions[5]!],
    };
    expect(resolveReference(s, 'the one on top')).toEqual({ kind: 'unique', id: 'r3' });
  });
  it('plurals and "both" name every match', () => {
    expect(resolveReference(scene, 'the cats')).toEqual({ kind: 'many', ids: ['r1', 'r2'] });
    expect(resolveReference(scene, 'both dogs')).toEqual({ kind: 'many', ids: ['r6', 'r7'] });
    expect(resolveReference(scene, 'all the mugs')).toEqual({ kind: 'many', ids: ['r3', 'r4', 'r5'] });
  });
  it('pronouns follow the previous turn', () => {
    expect(resolveReference(scene, 'it', { lastIds: ['r4'] })).toEqual({ kind: 'unique', id: 'r4' });
    expect(resolveReference(scene, 'them', { lastIds: ['r1', 'r2'] })).toEqual({ kind: 'many', ids: ['r1', 'r2'] });
    expect(resolveReference(scene, 'it')).toEqual({ kind: 'unparsed' });
  });
});

describe('resolver: ambiguous and missing references ask', () => {
  it('two cats, no qualifier', () => {
    const r = resolveReference(scene, 'the cat');
    expect(r).toMatchObject({ kind: 'ambiguous', ids: ['r1', 'r2'] });
    if (r.kind === 'ambiguous') expect(r.question).toBe('Which cat do you mean: the tabby cat or the black cat?');
  });
  it('identical labels are told apart by position', () => {
    const r = resolveReference(scene, 'the dog');
    expect(r.kind).toBe('ambiguous');
    if (r.kind === 'ambiguous')
      expect(r.question).toMatch(/Which dog do you mean: the one at the bottom or the one at the bottom right\?/);
  });
  it('a qualifier that does not separate them', () => {
    const twins: Scene = {
      ...scene,
      regions: [
        { id: 'a', label: 'a cat', prompt: 'a cat', box: box(0.1, 0.1) },
        { id: 'b', label: 'a cat', prompt: 'a cat', box: box(0.11, 0.6) },
      ],
    };
    expect(resolveReference(twins, 'the left cat').kind).toBe('ambiguous');
    expect(resolveReference(twins, 'the bigger cat').kind).toBe('ambiguous');
    expect(resolveReference(twins, 'the top cat')).toEqual({ kind: 'unique', id: 'a' });
  });
  it('an ordinal past the end', () => {
    const r = resolveReference(scene, 'the fourth mug');
    expect(r.kind).toBe('ambiguous');
    if (r.kind === 'ambiguous') expect(r.question).toMatch(/^There are only 3\./);
  });
  it('nothing of that kind', () => {
    const r = resolveReference(scene, 'the horse');
    expect(r).toMatchObject({ kind: 'none', noun: 'horse' });
    if (r.kind === 'none')
      expect(r.question).toMatch(/I can't find a horse in this picture\. It has a tabby cat, a black cat/);
  });
  it('describes positions in words', () => {
    expect(describePosition(box(0.05, 0.05))).toBe('at the top left');
    expect(describePosition(box(0.4, 0.35))).toBe('in the middle');
    expect(describePosition(box(0.75, 0.4))).toBe('on the right');
  });
});
