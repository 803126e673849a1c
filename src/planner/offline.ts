/**
 * The offline planner: English text → Scene without any model, for when no LLM is configured or it fails.
 * Reads the text with the small grammar of offline-parse.ts and lays the objects out with offline-layout.ts.
 */
import { normalizeScene } from '../scene/normalize.ts';
import { LIMITS, type Region, type Scene } from '../scene/schema.ts';
import { DEFAULT_SCENE_LIMITS, validateScene, type SceneLimits } from '../scene/validate.ts';
import { capitalize, stripArticle } from './lexicon.ts';
import { layoutDescription } from './offline-layout.ts';
import { describe, type Description } from './offline-parse.ts';

export interface PlanOptions {
  width?: number;
  height?: number;
  limits?: SceneLimits;
}

export interface PlanResult {
  scene: Scene;
  source: 'llm' | 'offline';
  /** Things the caller should tell the user or log (fallbacks, dropped objects). */
  warnings: string[];
}

export function clip(text: string, max: number): string {
  const t = text.replace(/\s+/g, ' ').trim();
  if (t.length <= max) return t;
  const cut = t.slice(0, max - 1);
  const space = cut.lastIndexOf(' ');
  return `${space > max * 0.6 ? cut.slice(0, space) : cut}…`;
}

/** Caps the number of boxes: the largest counts become one group region each, then late objects drop. */
function capRegions(d: Description, maxRegions: number, warnings: string[]): void {
  const total = () => d.entities.reduce((n, e) => n + (e.group ? 1 : e.count), 0);
  while (total() > maxRegions) {
    const biggest = d.entities.filter((e) => !e.group && e.count > 1).sort((a, b) => b.count - a.count)[0];
    if (!biggest) break;
    biggest.group = true;
    biggest.label = `${biggest.count} ${stripArticle(biggest.label).replace(/^(\S+)/, (w) => w)}`;
    warnings.push(
      `drew the ${biggest.count} × "${biggest.head}" as one group box to stay within ${maxRegions} regions`,
    );
  }
  while (total() > maxRegions) {
    const dropped = d.entities.pop()!;
    d.relations = d.relations.filter(
      (r) => r.a !== dropped.index && r.b !== dropped.index && (r.kind !== 'between' || r.c !== dropped.index),
    );
    warnings.push(`left out "${dropped.label}": at most ${maxRegions} regions`);
  }
}

function settingText(d: Description): { background: string; where: string } {
  const parts = d.settings.map((s, i) => (i === 0 || !s.prep ? s.np : `${s.prep} ${s.np}`));
  const background = parts.join(' ').trim();
  const first = d.settings[0];
  const where = first
    ? [first.prep || 'in', first.np, ...d.settings.slice(1).map((s) => `${s.prep} ${s.np}`.trim())].join(' ').trim()
    : '';
  return { background, where };
}

export function planOffline(text: string, opts: PlanOptions = {}): PlanResult {
  const limits = opts.limits ?? DEFAULT_SCENE_LIMITS;
  const width = opts.width ?? 1024;
  const height = opts.height ?? 1024;
  const warnings: string[] = [];
  const input = text.trim();
  if (!/[\p{L}\p{N}]/u.test(input))
    throw new Error('the scene description is empty: describe what the picture should show');
  const d = describe(input, { maxCount: limits.maxRegions });
  if (!d.english)
    warnings.push('the offline planner reads English only: the text is used as one caption without boxes');
  capRegions(d, limits.maxRegions, warnings);
  const { background, where } = settingText(d);
  const style = d.style ? stripArticle(d.style) : '';
  const placed = layoutDescription(d, width, height);
  const regions: Region[] = placed.map((p, i) => {
    const e = d.entities[p.entity]!;
    const label = clip(e.label, LIMITS.labelMax);
    const prompt = [label + (e.action ? ` ${e.action}` : '') + (where ? ` ${where}` : ''), style]
      .filter(Boolean)
      .join(', ');
    return { id: `r${i + 1}`, label, prompt: clip(prompt, LIMITS.promptMax), box: p.box };
  });
  const scene = normalizeScene(
    {
      width,
      height,
      prompt: clip(capitalize(d.caption), LIMITS.promptMax * 2),
      background: clip(
        [background || (d.english ? 'a realistic scene' : ''), style].filter(Boolean).join(', '),
        LIMITS.promptMax,
      ),
      exclude: d.exclude.slice(0, LIMITS.excludeMax).map((x) => clip(x, LIMITS.labelMax)),
      regions,
    },
    limits,
  );
  return { scene: validateScene(scene, limits), source: 'offline', warnings };
}
