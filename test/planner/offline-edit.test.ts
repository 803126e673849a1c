import { describe, expect, it } from 'vitest';
import { editOffline, rewriteCaption, splitInstruction } from '../../src/planner/offline-edit.ts';
import { planOffline } from '../../src/planner/offline.ts';
import { applyEdit } from '../../src/scene/edit.ts';
import type { Edit, Scene } from '../../src/scene/schema.ts';
import { validateScene } from '../../src/scene/validate.ts';

const scene = planOffline('a tabby cat on the left and a black cat on the right in a living room, oil painting').scene;

function applied(instruction: string, s: Scene = scene) {
  const { edit } = editOffline(s, instruction);
  expect(edit.kind).toBe('change');
  const a = applyEdit(s, edit as Extract<Edit, { kind: 'change' }>);
  validateScene(a.scene);
  return a;
}

describe('offline editor', () => {
  it('the plan it edits', () => {
    expect(scene.regions.map((r) => [r.id, r.label])).toEqual([
      ['r1', 'a tabby cat'],
      ['r2', 'a black cat'],
    ]);
  });
  it.each([
    ['change the left cat to a dog', 'r1', 'a dog'],
    ['replace the cat on the right with a fox', 'r2', 'a fox'],
    ['turn the black cat into a rabbit', 'r2', 'a rabbit'],
    ['make the black cat white', 'r2', 'a white cat'],
    ['please make the tabby cat orange!', 'r1', 'an orange cat'],
    ['the left cat should be grey', 'r1', 'a grey cat'],
  ])('%s', (instruction, id, label) => {
    const a = applied(instruction);
    const r = a.scene.regions.find((x) => x.id === id)!;
    expect(r.label).toBe(label);
    // The rest of the prompt (setting, style) survives; the other region and every id stay.
    expect(r.prompt).toBe(`${label} in a living room, oil painting`);
    expect(a.scene.regions.map((x) => x.id)).toEqual(['r1', 'r2']);
    expect(a.repaint.map((x) => x.id)).toEqual([id]);
    expect(a.regenerate).toBe(false);
  });
  it('plural targets change every match, one object each', () => {
    const a = applied('turn the cats into lions');
    expect(a.scene.regions.map((r) => r.label)).toEqual(['a lion', 'a lion']);
  });
  it('remove', () => {
    const a = applied('remove the left cat');
    expect(a.scene.regions.map((r) => r.id)).toEqual(['r2']);
    expect(a.repaint).toEqual([{ id: 'r1', oldBox: scene.regions[0]!.box }]);
  });
  it('add between them, at a spot, next to something', () => {
    const a = applied('add a red ball between them');
    const ball = a.scene.regions.find((r) => r.label === 'a red ball')!;
    expect(ball.id).toBe('r3');
    const c = (b: { x: number; w: number }) => b.x + b.w / 2;
    expect(c(ball.box)).toBeGreaterThan(c(scene.regions[0]!.box));
    expect(c(ball.box)).toBeLessThan(c(scene.regions[1]!.box));
    expect(ball.prompt).toBe('a red ball, oil painting');
    const b = applied('add a bird at the top');
    expect(b.scene.regions[2]!.box.y).toBeLessThan(0.2);
    const two = applied('add two mice');
    expect(two.scene.regions.filter((r) => r.label === 'a mouse')).toHaveLength(2);
  });
  it('size and position changes move boxes (a new generation)', () => {
    const bigger = applied('make the black cat bigger');
    const r2 = bigger.scene.regions[1]!;
    expect(r2.box.w * r2.box.h).toBeGreaterThan(scene.regions[1]!.box.w * scene.regions[1]!.box.h);
    expect(bigger.regenerate).toBe(true);
    const small = planOffline('a dog').scene;
    const moved = applied('move the dog to the top left corner', small);
    expect(moved.scene.regions[0]!.box.x).toBe(0);
    expect(moved.scene.regions[0]!.box.y).toBe(0);
  });
  it('background and style are global changes', () => {
    expect(editOffline(scene, 'change the background to a beach').edit).toMatchObject({
      kind: 'change',
      background: 'a beach',
    });
    const night = editOffline(scene, 'make it night').edit;
    expect(night).toMatchObject({ kind: 'change' });
    if (night.kind === 'change') expect(night.prompt).toMatch(/, night$/);
  });
  it('start over', () => {
    expect(editOffline(scene, 'start over: a castle at night').edit).toEqual({
      kind: 'start_over',
      description: 'a castle at night',
    });
    expect(editOffline(scene, 'draw a horse instead').edit).toEqual({ kind: 'start_over', description: 'a horse' });
    expect(editOffline(scene, 'start over').edit.kind).toBe('clarify');
  });
  it('ambiguous, missing and unreadable references ask instead of guessing', () => {
    expect(editOffline(scene, 'remove the cat').edit).toEqual({
      kind: 'clarify',
      question: 'Which cat do you mean: the tabby cat or the black cat?',
    });
    expect(editOffline(scene, 'make the cat a dog').edit.kind).toBe('clarify');
    const horse = editOffline(scene, 'change the horse to a cow').edit;
    expect(horse.kind).toBe('clarify');
    if (horse.kind === 'clarify') expect(horse.question).toMatch(/can't find a horse/);
    const nonsense = editOffline(scene, 'blah blah').edit;
    expect(nonsense.kind).toBe('clarify');
    if (nonsense.kind === 'clarify') expect(nonsense.question).toMatch(/change the left cat to a dog/);
  });
  it('targets say what "it" means next time', () => {
    const first = editOffline(scene, 'make the black cat white');
    expect(first.targets).toEqual(['r2']);
    const s = applyEdit(scene, first.edit as Extract<Edit, { kind: 'change' }>).scene;
    const second = editOffline(s, 'remove it', { lastIds: first.targets });
    expect(second.edit).toMatchObject({ kind: 'change', remove: ['r2'] });
  });
  it('the caption follows the change, so the repaint prompt names what is there now', () => {
    expect(applied('change the left cat to a dog').scene.prompt).toBe(
      'A dog on the left and a black cat on the right in a living room, oil painting',
    );
    expect(applied('remove the black cat').scene.prompt).toBe('A tabby cat on the left in a living room, oil painting');
    expect(applied('add a red ball').scene.prompt).toBe(
      'A tabby cat on the left and a black cat on the right in a living room, oil painting, with a red ball',
    );
    expect(rewriteCaption('Two cats and a blue car', 'a blue car', 'a red car')).toBe('Two cats and a red car');
    expect(rewriteCaption('Three cats on a sofa', 'a cat', 'a dog')).toBe('Three cats on a sofa');
    expect(rewriteCaption('A cat with a red ball', 'a red ball')).toBe('A cat');
  });
  it('several changes in one instruction: each region gets its own new label and prompt', () => {
    const a = applied('make the tabby cat orange and the black cat white');
    expect(a.scene.regions.map((r) => [r.id, r.label])).toEqual([
      ['r1', 'an orange cat'],
      ['r2', 'a white cat'],
    ]);
    expect(a.repaint.map((r) => r.id)).toEqual(['r1', 'r2']);
    expect(a.regenerate).toBe(false);
    const b = applied('change the left cat to a fox and the right cat to a wolf');
    expect(b.scene.regions.map((r) => r.label)).toEqual(['a fox', 'a wolf']);
    const c = applied('remove the tabby cat, then add a plant on the left');
    expect(c.scene.regions.map((r) => [r.id, r.label])).toEqual([
      ['r2', 'a black cat'],
      ['r3', 'a plant'],
    ]);
    expect(splitInstruction('add a red ball between the cat and the dog')).toEqual([
      'add a red ball between the cat and the dog',
    ]);
    expect(splitInstruction('make the cat black and white')).toEqual(['make the cat black and white']);
    for (const text of [
      'paint the tabby cat orange and the black cat white',
      'the tabby cat should be orange and the black cat white',
      'make the tabby cat orange and also the black cat white',
    ]) {
      expect(
        applied(text).scene.regions.map((r) => r.label),
        text,
      ).toEqual(['an orange cat', 'a white cat']);
    }
  });
  it('a thing that is not in the picture gets a question that names it', () => {
    const { edit } = editOffline(scene, 'make the ball blue');
    expect(edit).toMatchObject({ kind: 'clarify' });
    expect((edit as { question: string }).question).toMatch(
      /can't find a ball in this picture\. It has a tabby cat, a black cat/,
    );
    expect(editOffline(scene, 'make the tabby cat orange and the ball blue').edit.kind).toBe('clarify');
  });
});
