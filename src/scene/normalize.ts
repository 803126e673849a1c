import { TOKEN_PX, type Box, type Scene } from './schema.ts';
import type { SceneLimits } from './validate.ts';

export function snapSize(v: number, limits: Pick<SceneLimits, 'minSize' | 'maxSize'>): number {
  const lo = Math.ceil(limits.minSize / TOKEN_PX) * TOKEN_PX;
  const hi = Math.floor(limits.maxSize / TOKEN_PX) * TOKEN_PX;
  return Math.min(hi, Math.max(lo, Math.round(v / TOKEN_PX) * TOKEN_PX));
}

/**
 * Clamps a box into the image and snaps its edges to the token grid, keeping at least one token each
 * way. Edges round to the nearest grid line so a box keeps its centre as well as the grid allows.
 */
export function snapBox(box: Box, width: number, height: number): Box {
  const cols = width / TOKEN_PX;
  const rows = height / TOKEN_PX;
  const axis = (start: number, size: number, n: number): [number, number] => {
    const a = Math.min(Math.max(start, 0), 1);
    const b = Math.min(Math.max(start + Math.max(size, 0), 0), 1);
    let i0 = Math.round(a * n);
    let i1 = Math.round(b * n);
    if (i1 <= i0) {
      // Too thin to cover a token: grow around the centre, then push back inside the grid.
      const c = Math.floor(((a + b) / 2) * n);
      i0 = Math.min(Math.max(c, 0), n - 1);
      i1 = i0 + 1;
    }
    return [i0 / n, (i1 - i0) / n];
  };
  const [x, w] = axis(box.x, box.w, cols);
  const [y, h] = axis(box.y, box.h, rows);
  return { x, y, w, h };
}

/** Puts a scene on the token grid: sizes snapped into the limits, every box clamped and snapped. */
export function normalizeScene(scene: Scene, limits: Pick<SceneLimits, 'minSize' | 'maxSize'>): Scene {
  const width = snapSize(scene.width, limits);
  const height = snapSize(scene.height, limits);
  return {
    ...scene,
    width,
    height,
    regions: scene.regions.map((r) => ({ ...r, box: snapBox(r.box, width, height) })),
  };
}

/** Image size for an aspect ratio such as "16:9" near a pixel budget of side×side, on the token grid. */
export function sizeForAspect(
  aspect: string,
  side: number,
  limits: Pick<SceneLimits, 'minSize' | 'maxSize'>,
): { width: number; height: number } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*[:x×/]\s*(\d+(?:\.\d+)?)\s*$/.exec(aspect);
  if (!m) throw new Error(`aspect "${aspect}" is not of the form W:H (for example 16:9)`);
  const ratio = Number(m[1]) / Number(m[2]);
  if (!(ratio > 0) || ratio > 4 || ratio < 0.25)
    throw new Error(`aspect ${aspect} is too extreme: use a ratio between 1:4 and 4:1`);
  const area = side * side;
  return { width: snapSize(Math.sqrt(area * ratio), limits), height: snapSize(Math.sqrt(area / ratio), limits) };
}
