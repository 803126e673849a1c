import { SceneSchema, type Scene, type StyleRef } from './schema.ts';
import { validateScene, type SceneLimits, DEFAULT_SCENE_LIMITS } from './validate.ts';

/** A style reference with only its own fields, in a fixed order (as stored, printed and put in a paint pass). */
export function styleJSON(s: StyleRef): StyleRef {
  return { name: s.name, scale: s.scale, ...(s.sha256 ? { sha256: s.sha256 } : {}) };
}

/** The Scene as printed and stored: fixed key order, fractions as numbers, no schema-version noise. */
export function sceneToJSON(scene: Scene): string {
  return JSON.stringify({
    width: scene.width,
    height: scene.height,
    prompt: scene.prompt,
    background: scene.background,
    exclude: scene.exclude,
    regions: scene.regions.map((r) => ({
      id: r.id,
      label: r.label,
      prompt: r.prompt,
      box: { x: r.box.x, y: r.box.y, w: r.box.w, h: r.box.h },
      ...(r.loras?.length ? { loras: r.loras.map(styleJSON) } : {}),
    })),
    // Only when there are styles: a scene without them prints (and seeds) as it always did.
    ...(scene.loras?.length ? { loras: scene.loras.map(styleJSON) } : {}),
  });
}

export function parseSceneJSON(text: string, limits: SceneLimits = DEFAULT_SCENE_LIMITS): Scene {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`scene file is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  return validateScene(data, limits);
}

export { SceneSchema };
