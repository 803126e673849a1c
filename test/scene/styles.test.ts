// Styles in a Scene and in its paint passes: Scene JSON `loras` at the top level and per region, edits that set
// or clear them (a region's style is a repaint of that region, the picture's a new generation), the passes a Scene
// becomes (loras, HB_lora_list parallel to the boxes) and the repaint passes (the parent's styles carried, the
// changed region's as Repainting_loras), and the hashes pinned from LORA_DIR at request time.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyEdit, parseSceneJSON, sceneToJSON, SceneError, STYLE_LIMITS, type Scene } from '../../src/scene/index.ts';
import { LORA_LIMITS } from '../../src/rag/params.ts';
import { generationPasses, repaintPasses } from '../../src/paint/passes.ts';
import { passStyleProblems, pinStyles, resolveStyles } from '../../src/paint/styles.ts';
import { seedFromText } from '../../src/paint/scene-to-rag.ts';
import { writeStyleFile } from '../bot/style-files.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-scene-styles-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

const plain: Scene = {
  width: 512,
  height: 512,
  prompt: 'a cat and a dog',
  background: '',
  exclude: [],
  regions: [
    { id: 'r1', label: 'a cat', prompt: 'a cat', box: { x: 0, y: 0.25, w: 0.5, h: 0.5 } },
    { id: 'r2', label: 'a dog', prompt: 'a dog', box: { x: 0.5, y: 0.25, w: 0.5, h: 0.5 } },
  ],
};
const styled: Scene = {
  ...plain,
  loras: [{ name: 'film', scale: 0.6 }],
  regions: [{ ...plain.regions[0]!, loras: [{ name: 'watercolor', scale: 0.8 }] }, plain.regions[1]!],
};

describe('Scene styles', () => {
  it('allows what a paint pass allows (the Scene floor keeps its own copy of the limits)', () => {
    expect(STYLE_LIMITS).toEqual({
      maxStyles: LORA_LIMITS.maxLoras,
      minScale: LORA_LIMITS.minScale,
      maxScale: LORA_LIMITS.maxScale,
    });
  });

  it('Scene JSON carries styles at the top level and per region; a scene without styles prints and seeds as before', () => {
    const back = parseSceneJSON(sceneToJSON(styled));
    expect(back.loras).toEqual([{ name: 'film', scale: 0.6 }]);
    expect(back.regions[0]!.loras).toEqual([{ name: 'watercolor', scale: 0.8 }]);
    expect(sceneToJSON(plain)).not.toMatch(/loras/);
    expect(generationPasses(plain)[0]!.seed).toBe(seedFromText(sceneToJSON(plain)));
  });

  it('refuses a scale outside −4…4, more than 8 styles in one picture, and one style twice in a list', () => {
    const bad = (s: unknown) => {
      try {
        parseSceneJSON(JSON.stringify(s));
      } catch (e) {
        if (e instanceof SceneError) return e.message;
        throw e;
      }
      return '';
    };
    expect(bad({ ...styled, loras: [{ name: 'film', scale: 4.5 }] })).toMatch(/loras\.0\.scale: Too big/);
    const nine = Array.from({ length: 9 }, (_, i) => ({ name: `s${i}`, scale: 1 }));
    expect(
      bad({ ...plain, loras: nine.slice(0, 5), regions: [{ ...plain.regions[0], loras: nine.slice(5) }] }),
    ).toMatch(/uses 9 styles .*at most 8 fit in one picture/);
    // 8 names, one of them at two scales: 9 of the painter's slots, refused here rather than when painting.
    const eight = nine.slice(0, 8);
    expect(
      bad({
        ...plain,
        loras: eight.slice(0, 4),
        regions: [{ ...plain.regions[0], loras: [...eight.slice(4), { name: 's0', scale: 0.5 }] }],
      }),
    ).toMatch(/uses 9 styles \(.*, some at two scales\); at most 8 fit in one picture/);
    expect(
      bad({
        ...plain,
        loras: [
          { name: 'a', scale: 1 },
          { name: 'a', scale: 0.5 },
        ],
      }),
    ).toMatch(/the scene names the style "a" twice/);
  });

  it('an edit that gives a region a style repaints that region; clearing it too; the picture’s style is a new generation', () => {
    const set = applyEdit(plain, {
      kind: 'change',
      update: [{ id: 'r2', loras: [{ name: 'ink', scale: 1 }] }],
      add: [],
      remove: [],
    });
    expect(set).toMatchObject({ regenerate: false, repaint: [{ id: 'r2' }] });
    expect(set.scene.regions[1]!.loras).toEqual([{ name: 'ink', scale: 1 }]);
    const cleared = applyEdit(styled, { kind: 'change', update: [{ id: 'r1', loras: [] }], add: [], remove: [] });
    expect(cleared.repaint.map((r) => r.id)).toEqual(['r1']);
    expect(cleared.scene.regions[0]).not.toHaveProperty('loras');
    // A label change keeps the region's style.
    const relabel = applyEdit(styled, {
      kind: 'change',
      update: [{ id: 'r1', label: 'a black cat' }],
      add: [],
      remove: [],
    });
    expect(relabel.scene.regions[0]!.loras).toEqual([{ name: 'watercolor', scale: 0.8 }]);
    const global = applyEdit(styled, { kind: 'change', update: [], add: [], remove: [], loras: [] });
    expect(global).toMatchObject({ regenerate: true, reason: 'the whole picture changed' });
    expect(global.scene).not.toHaveProperty('loras');
  });
});

describe('styles in paint passes', () => {
  it('a Scene’s styles become loras and HB_lora_list (one list per box); a style-less scene has neither field', () => {
    const [p] = generationPasses(styled);
    expect(p!.loras).toEqual([{ name: 'film', scale: 0.6 }]);
    expect(p!.HB_lora_list).toEqual([[{ name: 'watercolor', scale: 0.8 }], []]);
    expect(p!.HB_prompt_list).toEqual(['a cat', 'a dog']);
    const [q] = generationPasses(plain);
    expect(q).not.toHaveProperty('loras');
    expect(q).not.toHaveProperty('HB_lora_list');
  });

  it('a repaint carries the parent’s styles and gives the changed region’s as Repainting_loras; a repaint of a repaint drops the old ones', async () => {
    const parent = { pass: generationPasses(styled)[0]!, scene: styled };
    const applied = applyEdit(styled, {
      kind: 'change',
      update: [{ id: 'r2', loras: [{ name: 'ink', scale: 0.5 }] }],
      add: [],
      remove: [],
    });
    const d = await repaintPasses(parent, applied);
    if (d.mode !== 'repaint') throw new Error(d.mode);
    const r = d.passes[0]!;
    expect(r.loras).toEqual(parent.pass.loras);
    expect(r.HB_lora_list).toEqual(parent.pass.HB_lora_list);
    expect(r.Repainting_loras).toEqual([{ name: 'ink', scale: 0.5 }]);
    expect(r.Repainting_HB_prompt).toBe('a dog');
    // Then the cat's label changes: the repaint of the repaint paints the cat with its own style, not the dog's.
    const next = applyEdit(applied.scene, {
      kind: 'change',
      update: [{ id: 'r1', label: 'a black cat' }],
      add: [],
      remove: [],
    });
    const d2 = await repaintPasses({ pass: r, scene: applied.scene }, next);
    if (d2.mode !== 'repaint') throw new Error(d2.mode);
    expect(d2.passes[0]!.Repainting_loras).toEqual([{ name: 'watercolor', scale: 0.8 }]);
    // A region that loses its style is repainted without one: no Repainting_loras at all.
    const bare = applyEdit(applied.scene, { kind: 'change', update: [{ id: 'r2', loras: [] }], add: [], remove: [] });
    const d3 = await repaintPasses({ pass: r, scene: applied.scene }, bare);
    if (d3.mode !== 'repaint') throw new Error(d3.mode);
    expect(d3.passes[0]).not.toHaveProperty('Repainting_loras');
  });

  it('pins each style’s SHA-256 from LORA_DIR (keeping hashes already pinned); resolves names to paths with the hash checked', async () => {
    const dir = path.join(tmp, 'styles');
    const film = writeStyleFile(dir, 'film', { seed: 1 });
    const water = writeStyleFile(dir, 'watercolor', { seed: 2 });
    const pinned = await pinStyles(generationPasses(styled), { loraDir: dir });
    expect(pinned[0]!.loras).toEqual([{ name: 'film', scale: 0.6, sha256: sha(film) }]);
    expect(pinned[0]!.HB_lora_list![0]).toEqual([{ name: 'watercolor', scale: 0.8, sha256: sha(water) }]);
    const resolved = await resolveStyles(pinned, { loraDir: dir });
    expect(resolved[0]!.loras).toEqual([{ name: film, scale: 0.6, sha256: sha(film) }]);
    await expect(pinStyles(generationPasses(styled), { loraDir: path.join(tmp, 'styles-none') })).rejects.toThrow(
      /LORA_DIR .* cannot be read/,
    );
    const other = path.join(tmp, 'worker');
    writeStyleFile(other, 'film', { seed: 9 });
    writeStyleFile(other, 'watercolor', { seed: 2 });
    await expect(resolveStyles(pinned, { loraDir: other })).rejects.toThrow(
      /this worker's file for the style "film" .* differs from the one the request was made with/,
    );
  });

  it('a per-box list that does not match the boxes, or more than 8 styles in one pass, is a problem named before painting', () => {
    const [p] = generationPasses(styled);
    expect(passStyleProblems({ ...p!, HB_lora_list: [[]] })).toEqual([
      'HB_lora_list has 1 entries but there are 2 boxes: give one list per box',
    ]);
    const many = Array.from({ length: 9 }, (_, i) => ({ name: `s${i}`, scale: 1 }));
    expect(passStyleProblems({ ...p!, loras: many })[0]).toMatch(
      /uses 10 styles \(a style at two scales counts twice\); at most 8/,
    );
  });
});
