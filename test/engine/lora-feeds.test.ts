import { describe, expect, it } from 'vitest';
import { distinctLoraRefs, layerFactors, loraRun, softMask, type PlanLoras } from '../../src/engine/lora/feeds.ts';
import type { LoraFile } from '../../src/engine/lora/types.ts';

function file(
  path: string,
  layers: Record<string, { rank: number; alpha?: number; up: number[]; down: number[] }>,
): LoraFile {
  const m = new Map(
    Object.entries(layers).map(([name, l]) => [
      name,
      {
        down: Float32Array.from(l.down),
        up: Float32Array.from(l.up),
        rank: l.rank,
        inFeatures: l.down.length / l.rank,
        outFeatures: l.up.length / l.rank,
        alphaScale: (l.alpha ?? l.rank) / l.rank,
      },
    ]),
  );
  return { path, sha256: '0'.repeat(64), format: 'kohya', layers: m, meta: { triggerWords: [] }, warnings: [] };
}

describe('LoRA feeds', () => {
  it('soft edge: 1 inside, 2/3 and 1/3 at Chebyshev distance 1 and 2 tokens, 0 beyond', () => {
    const inside = new Uint8Array(7 * 7);
    inside[3 * 7 + 3] = 1;
    const w = softMask(inside, 7, 7);
    expect(w[3 * 7 + 3]).toBe(1);
    expect(w[2 * 7 + 2]).toBeCloseTo(2 / 3, 6);
    expect(w[1 * 7 + 4]).toBeCloseTo(1 / 3, 6);
    expect(w[0]).toBe(0);
    expect(w[3 * 7 + 6]).toBe(0);
  });

  it('factors side by side per layer, B scaled by scale × alpha/rank, owner naming each rank row', () => {
    const a = file('a', { l: { rank: 1, alpha: 2, down: [1, 2], up: [1, 1, 1] } });
    const b = file('b', {
      l: { rank: 2, down: [1, 0, 0, 1], up: [1, 2, 3, 4, 5, 6] },
      m: { rank: 1, down: [3], up: [4] },
    });
    const f = layerFactors([
      { file: a, scale: 0.5, name: 'a' },
      { file: b, scale: 2, name: 'b' },
    ]);
    const l = f.get('l')!;
    expect(l.rank).toBe(3);
    expect(Array.from(l.down)).toEqual([1, 2, 1, 0, 0, 1]);
    // Row o of up: [a's column × 0.5·2, b's two columns × 2].
    expect(Array.from(l.up)).toEqual([1, 2, 4, 1, 6, 8, 1, 10, 12]);
    expect(Array.from(l.owner)).toEqual([0n, 1n, 1n]);
    // A layer with one LoRA keeps its A as it is.
    expect(f.get('m')!.down).toBe(b.layers.get('m')!.down);
  });

  it('weight tables: global everywhere, a box style on its box with the soft edge, the larger weight where styles meet; the repaint blends across its mask edge', () => {
    const g = { name: 'g', scale: 1 };
    const r = { name: 'r', scale: 1 };
    const p: PlanLoras = {
      global: [g],
      boxes: [
        { rect: { r0: 0, r1: 2, c0: 0, c1: 2 }, loras: [r] },
        { rect: { r0: 5, r1: 6, c0: 5, c1: 6 }, loras: [r, { name: 'r', scale: 0.5 }] },
      ],
      repaint: [{ name: 'x', scale: 1 }],
    };
    const refs = distinctLoraRefs(p);
    expect(refs.map((x) => `${x.name}@${x.scale}`)).toEqual(['g@1', 'r@1', 'r@0.5', 'x@1']);
    const entries = refs.map((ref) => ({ file: file(ref.name, {}), scale: ref.scale, name: ref.name }));
    const mask = new Uint8Array(36);
    mask[0] = 1;
    const run = loraRun(p, entries, { rows: 6, cols: 6, repaintMask: mask });
    const at = (t: number, c: number) => run.mainImg[t * 4 + c]!;
    expect(at(0, 0)).toBe(1);
    expect(at(35, 0)).toBe(1);
    expect(at(7, 1)).toBe(1); // inside box 0
    expect(at(2, 1)).toBeCloseTo(2 / 3, 6); // one token right of box 0
    expect(at(3, 1)).toBeCloseTo(1 / 3, 6);
    expect(at(28, 1)).toBeCloseTo(2 / 3, 6); // one token from box 1
    expect(at(21, 1)).toBeCloseTo(1 / 3, 6); // two tokens from both boxes: the larger weight, not the sum
    expect(at(35, 2)).toBe(1);
    expect(at(0, 2)).toBe(0);
    expect(at(0, 3)).toBe(0); // the repaint style is not in the main pass
    expect(Array.from(run.rows.boxes[0]!)).toEqual([1, 1, 0, 0]);
    expect(Array.from(run.rows.repaint)).toEqual([1, 0, 0, 1]);
    const rp = (t: number, c: number) => run.repaintImg![t * 4 + c]!;
    expect(rp(0, 3)).toBe(1);
    expect(rp(0, 1)).toBe(0); // inside the mask: the repaint's styles only
    expect(rp(1, 3)).toBeCloseTo(2 / 3, 6);
    expect(rp(1, 1)).toBeCloseTo(1 / 3, 6); // blended with the main pass's 1
    expect(rp(20, 1)).toBe(run.mainImg[20 * 4 + 1]);
  });
});
