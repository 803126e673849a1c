import { SceneSchema, STYLE_LIMITS, TOKEN_PX, type Box, type Region, type Scene, type StyleRef } from './schema.ts';

export interface SceneLimits {
  maxRegions: number;
  minSize: number;
  maxSize: number;
}

export const DEFAULT_SCENE_LIMITS: SceneLimits = { maxRegions: 8, minSize: 256, maxSize: 1536 };

/** A scene that cannot be painted, with every reason in words a user can act on. */
export class SceneError extends Error {
  constructor(readonly problems: string[]) {
    super(
      problems.length === 1
        ? problems[0]!
        : `The layout has ${problems.length} problems:\n${problems.map((p) => `- ${p}`).join('\n')}`,
    );
    this.name = 'SceneError';
  }
}

// Boxes are fractions; allow float noise at the edges before calling a box "outside".
const EPS = 1e-6;

function describe(r: Pick<Region, 'id' | 'label'>): string {
  return `region "${r.label}" (${r.id})`;
}

export function sizeProblems(width: number, height: number, limits: SceneLimits): string[] {
  const out: string[] = [];
  for (const [name, v] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (!Number.isInteger(v) || v % TOKEN_PX !== 0)
      out.push(
        `${name} ${v} is not a multiple of ${TOKEN_PX}: use ${Math.max(TOKEN_PX, Math.round(v / TOKEN_PX) * TOKEN_PX)}`,
      );
    if (v < limits.minSize || v > limits.maxSize)
      out.push(`${name} ${v} is outside the allowed range ${limits.minSize}–${limits.maxSize}`);
  }
  return out;
}

export function boxProblems(box: Box, width: number, height: number, who: string): string[] {
  const out: string[] = [];
  const { x, y, w, h } = box;
  if (w <= 0 || h <= 0) return [`${who} has an empty box (w=${w}, h=${h}): give it a positive width and height`];
  if (x < -EPS || y < -EPS) out.push(`${who} starts outside the image (x=${x}, y=${y}): x and y must be ≥ 0`);
  if (x + w > 1 + EPS) out.push(`${who} extends past the right edge (x + w = ${round(x + w)} > 1)`);
  if (y + h > 1 + EPS) out.push(`${who} extends past the bottom edge (y + h = ${round(y + h)} > 1)`);
  if (w * width < TOKEN_PX - EPS || h * height < TOKEN_PX - EPS) {
    out.push(
      `${who} is smaller than one ${TOKEN_PX}-px token at ${width}×${height} (${round(w * width)}×${round(h * height)} px): make it larger`,
    );
  }
  return out;
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/**
 * Parses and checks a scene: structure (zod), then what the painter needs (sizes on the token grid,
 * boxes inside the image and at least one token, unique ids, the region limit). Throws SceneError.
 */
export function validateScene(input: unknown, limits: SceneLimits = DEFAULT_SCENE_LIMITS): Scene {
  const parsed = SceneSchema.safeParse(input);
  if (!parsed.success) {
    throw new SceneError(parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'scene'}: ${i.message}`));
  }
  const scene = parsed.data;
  const problems = [...sizeProblems(scene.width, scene.height, limits)];
  if (scene.regions.length > limits.maxRegions) {
    problems.push(
      `the layout has ${scene.regions.length} regions; at most ${limits.maxRegions} are allowed: merge or drop some`,
    );
  }
  const seen = new Set<string>();
  for (const r of scene.regions) {
    if (seen.has(r.id)) problems.push(`two regions share the id "${r.id}": ids must be unique`);
    seen.add(r.id);
    problems.push(...boxProblems(r.box, scene.width, scene.height, describe(r)));
  }
  problems.push(...styleProblems(scene));
  if (problems.length) throw new SceneError(problems);
  return scene;
}

/** Every style the scene names, once each (a style used globally and in a region counts once). */
export function sceneStyleNames(scene: Pick<Scene, 'loras' | 'regions'>): string[] {
  const all: StyleRef[] = [...(scene.loras ?? []), ...scene.regions.flatMap((r) => r.loras ?? [])];
  return [...new Set(all.map((s) => s.name))];
}

/** The painter holds at most STYLE_LIMITS.maxStyles styles in one picture; one style twice in one list is a typo. */
export function styleProblems(scene: Pick<Scene, 'loras' | 'regions'>): string[] {
  const out: string[] = [];
  const names = sceneStyleNames(scene);
  // The painter's rule (rag/params.ts styleSlots): one slot per (style, scale), so a style at two scales takes two.
  const all = [...(scene.loras ?? []), ...scene.regions.flatMap((r) => r.loras ?? [])];
  const slots = new Set(all.map((s) => `${s.name}\u0000${s.scale}`)).size;
  if (slots > STYLE_LIMITS.maxStyles)
    out.push(
      `the layout uses ${slots} styles (${names.join(', ')}${slots > names.length ? ', some at two scales' : ''}); at most ${STYLE_LIMITS.maxStyles} fit in one picture: drop some, or use one scale per style`,
    );
  const twice = (list: StyleRef[] | undefined, who: string) => {
    const seen = new Set<string>();
    for (const s of list ?? []) {
      if (seen.has(s.name)) out.push(`${who} names the style "${s.name}" twice: give it once, with one scale`);
      seen.add(s.name);
    }
  };
  twice(scene.loras, 'the scene');
  for (const r of scene.regions) twice(r.loras, describe(r));
  return out;
}
