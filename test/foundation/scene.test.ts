import { describe, expect, it } from 'vitest';
import {
  applyEdit,
  normalizeScene,
  parseSceneJSON,
  sceneToJSON,
  SceneError,
  sizeForAspect,
  snapBox,
  validateScene,
  type Scene,
} from '../../src/scene/index.ts';

const base: Scene = {
  width: 1024,
  height: 768,
  prompt: 'two cats on a sofa',
  background: 'a cosy living room',
  exclude: ['dogs'],
  regions: [
    { id: 'r1', label: 'a tabby cat', prompt: 'a tabby cat curled up', box: { x: 0.05, y: 0.3, w: 0.4, h: 0.5 } },
    { id: 'r2', label: 'a black cat', prompt: 'a black cat sitting', box: { x: 0.55, y: 0.3, w: 0.4, h: 0.5 } },
  ],
};

function problems(input: unknown, limits?: Parameters<typeof validateScene>[1]): string[] {
  try {
    validateScene(input, limits);
    return [];
  } catch (e) {
    if (e instanceof SceneError) return e.problems;
    throw e;
  }
}

describe('Scene validation', () => {
  it('accepts a good scene and fills defaults', () => {
    const s = validateScene({ width: 512, height: 512, prompt: 'a cat', regions: [] });
    expect(s.background).toBe('');
    expect(s.exclude).toEqual([]);
    expect(validateScene(base)).toEqual(base);
  });

  it('explains boxes outside the image and too small for one token', () => {
    const p = problems({
      ...base,
      regions: [
        { id: 'a', label: 'a dog', prompt: 'a dog', box: { x: 0.8, y: 0.1, w: 0.4, h: 0.2 } },
        { id: 'b', label: 'a bee', prompt: 'a bee', box: { x: 0.1, y: 0.1, w: 0.01, h: 0.01 } },
        { id: 'c', label: 'a cup', prompt: 'a cup', box: { x: -0.1, y: 0.1, w: 0.2, h: 0.2 } },
        { id: 'd', label: 'a pen', prompt: 'a pen', box: { x: 0.1, y: 0.1, w: 0, h: 0.2 } },
      ],
    });
    expect(p).toContain('region "a dog" (a) extends past the right edge (x + w = 1.2 > 1)');
    expect(p.some((m) => m.startsWith('region "a bee" (b) is smaller than one 16-px token at 1024×768'))).toBe(true);
    expect(p.some((m) => m.startsWith('region "a cup" (c) starts outside the image'))).toBe(true);
    expect(p.some((m) => m.startsWith('region "a pen" (d) has an empty box'))).toBe(true);
  });

  it('rejects duplicate ids, too many regions, empty labels and off-grid sizes', () => {
    const r = base.regions[0]!;
    expect(problems({ ...base, regions: [r, r] })).toContain('two regions share the id "r1": ids must be unique');
    expect(problems(base, { maxRegions: 1, minSize: 256, maxSize: 1536 })[0]).toMatch(/2 regions; at most 1/);
    expect(problems({ ...base, regions: [{ ...r, label: '  ' }] })[0]).toMatch(
      /regions\.0\.label: a region needs a label/,
    );
    const sizes = problems({ ...base, width: 1000, height: 4096 });
    expect(sizes).toContain('width 1000 is not a multiple of 16: use 1008');
    expect(sizes).toContain('height 4096 is outside the allowed range 256–1536');
  });

  it('rejects text that is far too long and non-JSON files', () => {
    expect(problems({ ...base, regions: [{ ...base.regions[0]!, prompt: 'x'.repeat(601) }] })[0]).toMatch(
      /regions\.0\.prompt/,
    );
    expect(() => parseSceneJSON('{"width": 512,')).toThrow(/not valid JSON/);
  });
});

describe('Scene normalisation', () => {
  it('snaps boxes to the 16-px grid, clamps them and keeps at least one token', () => {
    expect(snapBox({ x: 0.1, y: 0.1, w: 0.3, h: 0.3 }, 160, 160)).toEqual({ x: 0.1, y: 0.1, w: 0.3, h: 0.3 });
    const s = snapBox({ x: 0.9, y: -0.2, w: 0.5, h: 0.001 }, 512, 512);
    expect(s.x + s.w).toBeCloseTo(1);
    expect(s.y).toBe(0);
    expect(s.h * 512).toBe(16);
    for (const v of [s.x, s.y, s.w, s.h]) expect(Number.isInteger(Math.round(v * 512 * 1e9) / 1e9 / 16)).toBe(true);
  });

  it('snaps sizes into the limits and derives sizes from aspect ratios', () => {
    const n = normalizeScene({ ...base, width: 1000, height: 2000 }, { minSize: 256, maxSize: 1536 });
    expect([n.width, n.height]).toEqual([1008, 1536]);
    expect(() => validateScene(n, { maxRegions: 8, minSize: 256, maxSize: 1536 })).not.toThrow();
    expect(sizeForAspect('16:9', 1024, { minSize: 256, maxSize: 1536 })).toEqual({ width: 1360, height: 768 });
    expect(sizeForAspect('1:1', 1024, { minSize: 256, maxSize: 1536 })).toEqual({ width: 1024, height: 1024 });
    expect(() => sizeForAspect('wide', 1024, { minSize: 256, maxSize: 1536 })).toThrow(/W:H/);
  });

  it('round-trips through JSON with a fixed key order', () => {
    const text = sceneToJSON(base);
    expect(Object.keys(JSON.parse(text))).toEqual(['width', 'height', 'prompt', 'background', 'exclude', 'regions']);
    expect(parseSceneJSON(text)).toEqual(base);
    expect(sceneToJSON(parseSceneJSON(text))).toBe(text);
  });
});

describe('applying an edit', () => {
  it('repaints a relabelled region and keeps ids', () => {
    const r = applyEdit(base, { kind: 'change', update: [{ id: 'r1', label: 'a dog' }], add: [], remove: [] });
    expect(r.regenerate).toBe(false);
    expect(r.repaint).toEqual([{ id: 'r1', oldBox: base.regions[0]!.box, newBox: base.regions[0]!.box }]);
    expect(r.scene.regions.map((x) => x.id)).toEqual(['r1', 'r2']);
    expect(r.scene.regions[0]!.prompt).toBe('a dog');
  });

  it('adds with a fresh id, removes, and treats a move or a new caption as a new generation', () => {
    const added = applyEdit(base, {
      kind: 'change',
      update: [],
      add: [{ label: 'a ball', prompt: 'a red ball', box: { x: 0.4, y: 0.8, w: 0.2, h: 0.15 } }],
      remove: ['r2'],
    });
    expect(added.scene.regions.map((x) => x.id)).toEqual(['r1', 'r3']);
    expect(added.repaint.map((x) => x.id)).toEqual(['r2', 'r3']);
    expect(added.regenerate).toBe(false);
    const moved = applyEdit(base, {
      kind: 'change',
      update: [{ id: 'r2', box: { x: 0.5, y: 0.1, w: 0.3, h: 0.3 } }],
      add: [],
      remove: [],
    });
    expect(moved.regenerate).toBe(true);
    expect(
      applyEdit(base, { kind: 'change', update: [], add: [], remove: [], prompt: 'two cats, oil painting' }).regenerate,
    ).toBe(true);
  });

  it('refuses edits that name regions the scene does not have', () => {
    expect(() => applyEdit(base, { kind: 'change', update: [{ id: 'r9', label: 'x' }], add: [], remove: [] })).toThrow(
      /"r9", which is not in the layout/,
    );
  });
});
