/**
 * planScene: scene text → Scene. The LLM plans when one is configured; its answer is checked (schema, boxes,
 * region count, excluded things, language, the counts the text names) with one repair turn, then coerced
 * where that is safe and validated as a Scene. Without an LLM, or when it fails, the offline planner answers
 * (with a warning), unless the caller asked for the LLM only.
 */
import { normalizeScene, sizeForAspect } from '../scene/normalize.ts';
import { LIMITS, type Box, type Region, type Scene } from '../scene/schema.ts';
import { DEFAULT_SCENE_LIMITS, validateScene, type SceneLimits } from '../scene/validate.ts';
import { childLogger } from '../log/logger.ts';
import { pluralize, singularize } from './lexicon.ts';
import { LlmError, type LlmClient } from './llm.ts';
import { checkDescription, clip, crowdNote, planOffline, type Crowd, type PlanResult } from './offline.ts';
import { describe, looksEnglish } from './offline-parse.ts';
import { plannerMessages } from './prompts.ts';
import { checkedStyles, styleInDescription, type StyleChoice } from './styles.ts';
import { WirePlan, type WirePlanStyled } from './wire.ts';
import { WirePlanStyled as WirePlanStyledSchema } from './wire.ts';

const log = childLogger('planner');

export interface PlanSceneOptions {
  /** The LLM; undefined = no LLM configured (offline planner, with a notice). */
  llm?: LlmClient;
  /** Use the offline planner even if an LLM is configured. */
  offline?: boolean;
  /** Fail instead of falling back to the offline planner. */
  llmOnly?: boolean;
  /** Fixed image size; otherwise `defaultSize` square, or the aspect the text asks for. */
  width?: number;
  height?: number;
  defaultSize?: number;
  limits?: SceneLimits;
  signal?: AbortSignal;
  /** The styles there are (LORA_DIR): the picture or a region may be given one the description asks for. */
  styles?: StyleChoice[];
}

const EPS = 0.01;

function words(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}

/** Does the text name the thing? Compared by its last word, singular or plural ("no dogs" ↔ "a dog"). */
function mentions(text: string, thing: string): boolean {
  const last = words(thing).pop();
  if (!last) return false;
  const forms = new Set([last, singularize(last), pluralize(singularize(last))]);
  return words(text).some((x) => forms.has(x));
}

function iou(a: Box, b: Box): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  const inter = w > 0 && h > 0 ? w * h : 0;
  return inter / (a.w * a.h + b.w * b.h - inter || 1);
}

/** Problems worth a repair turn. Each names the region and says what to change. */
export function planProblems(plan: WirePlan, text: string, maxRegions: number): string[] {
  const out: string[] = [];
  if (!plan.prompt.trim()) out.push('prompt is empty: write a one-sentence caption of the whole picture');
  if (plan.regions.length > maxRegions)
    out.push(
      `the layout has ${plan.regions.length} regions; at most ${maxRegions} are allowed: merge or drop some (a crowd can be one box)`,
    );
  const pixels = plan.regions.some((r) => [r.box.x, r.box.y, r.box.w, r.box.h].some((v) => v > 1.5));
  plan.regions.slice(0, maxRegions * 2).forEach((r, i) => {
    const who = `regions[${i}] ("${clip(r.label, 40)}")`;
    if (!r.label.trim()) out.push(`regions[${i}] has an empty label`);
    else if (r.label.length > LIMITS.labelMax)
      out.push(`${who}: the label is ${r.label.length} characters; keep it under ${LIMITS.labelMax}`);
    if (r.prompt.length > LIMITS.promptMax)
      out.push(`${who}: the prompt is ${r.prompt.length} characters; keep it under ${LIMITS.promptMax}`);
    const { x, y, w, h } = r.box;
    if (![x, y, w, h].every(Number.isFinite) || w <= 0 || h <= 0)
      out.push(`${who}: the box needs a positive width and height`);
    else if (x < -EPS || y < -EPS || x + w > 1 + EPS || y + h > 1 + EPS) {
      out.push(
        `${who}: the box {x: ${x}, y: ${y}, w: ${w}, h: ${h}} is outside the image: use fractions between 0 and 1 with x + w ≤ 1 and y + h ≤ 1${pixels ? ' (these look like pixels)' : ''}`,
      );
    }
  });
  for (let i = 0; i < plan.regions.length && i < 32; i++) {
    for (let j = i + 1; j < plan.regions.length && j < 32; j++) {
      if (iou(plan.regions[i]!.box, plan.regions[j]!.box) > 0.85)
        out.push(`regions[${i}] and regions[${j}] have almost the same box: give each object its own place`);
    }
  }
  // LMD's rule: the background never repeats a boxed object (the image model would paint it twice).
  const repeated = new Set<string>();
  plan.regions.slice(0, 32).forEach((r, i) => {
    const head = r.label.toLowerCase().split(/\s+of\s+/)[0]!;
    const last = words(head).pop();
    if (last && !repeated.has(singularize(last)) && mentions(plan.background, head)) {
      repeated.add(singularize(last));
      out.push(
        `the background names "${last}", which has its own box (regions[${i}] "${clip(r.label, 40)}"): describe the setting without boxed objects`,
      );
    }
  });
  for (const x of plan.exclude) {
    const where = [
      ...plan.regions.flatMap((r, i) => [
        mentions(r.label, x) ? `regions[${i}].label` : '',
        mentions(r.prompt, x) ? `regions[${i}].prompt` : '',
      ]),
      mentions(plan.background, x) ? 'background' : '',
      mentions(plan.prompt, x) ? 'prompt' : '',
    ].filter(Boolean);
    if (where.length)
      out.push(
        `"${x}" is excluded but appears in ${where.join(', ')}: leave excluded things out of every box and text`,
      );
  }
  const written = [plan.prompt, plan.background, ...plan.regions.map((r) => `${r.label} ${r.prompt}`)].join(' ');
  if (!looksEnglish(written)) out.push('write the caption, background, labels and prompts in English');
  // LMD's numeracy check: the counts the text states must match the boxes.
  const d = describe(text, { maxCount: maxRegions });
  const boxesOf = (head: string) => plan.regions.filter((r) => words(r.label).map(singularize).includes(head)).length;
  if (d.english && plan.regions.length <= maxRegions) {
    for (const c of d.comparisons) {
      const [a, b] = [d.entities[c.a]!, d.entities[c.b]!];
      if (a.group || b.group) continue;
      const [x, y] = [boxesOf(a.head), boxesOf(b.head)];
      const holds =
        c.rel === 'more'
          ? x > y
          : c.rel === 'fewer'
            ? x < y
            : c.rel === 'equal'
              ? x === y
              : x === Math.round((c.k ?? 1) * y);
      if (!holds || !x || !y)
        out.push(
          `the description compares the counts (${c.rel === 'times' ? `${c.k} times as many` : c.rel} "${a.head}" than/as "${b.head}") but the layout has ${x} and ${y}: choose counts that satisfy it, one box each`,
        );
    }
    const compared = new Set(d.comparisons.flatMap((c) => [c.a, c.b]));
    for (const e of d.entities) {
      if (!e.counted || e.group || e.count > maxRegions || compared.has(e.index)) continue;
      const n = plan.regions.filter((r) => words(r.label).map(singularize).includes(e.head)).length;
      if (n !== e.count && n > 0)
        out.push(
          `the description asks for ${e.count} × "${e.head}" but ${n} box${n === 1 ? '' : 'es'} name it: one box per object`,
        );
    }
  }
  return out;
}

/** Safe repairs of what the repair turn left: boxes moved and scaled into the image, texts clipped. */
function coerce(plan: WirePlan, maxRegions: number, warnings: string[]): WirePlan {
  if (plan.regions.length > maxRegions)
    throw new LlmError(
      `the LLM planned ${plan.regions.length} regions even after a repair; at most ${maxRegions} are allowed`,
      'invalid',
    );
  let regions = plan.regions.filter((r) => {
    const ok =
      [r.box.x, r.box.y, r.box.w, r.box.h].every(Number.isFinite) && r.box.w > 0 && r.box.h > 0 && r.label.trim();
    if (!ok) warnings.push(`dropped region "${clip(r.label, 40)}": its box or label is unusable`);
    return ok;
  });
  // Like LMD's box fitting: shift everything right/down when it starts outside, scale it in when it ends outside.
  const minX = Math.min(0, ...regions.map((r) => r.box.x)),
    minY = Math.min(0, ...regions.map((r) => r.box.y));
  regions = regions.map((r) => ({ ...r, box: { ...r.box, x: r.box.x - minX, y: r.box.y - minY } }));
  const maxX = Math.max(1, ...regions.map((r) => r.box.x + r.box.w)),
    maxY = Math.max(1, ...regions.map((r) => r.box.y + r.box.h));
  if (maxX > 1 || maxY > 1 || minX < 0 || minY < 0)
    warnings.push('the LLM placed boxes outside the image; they were scaled into it');
  regions = regions.map((r) => ({
    ...r,
    box: { x: r.box.x / maxX, y: r.box.y / maxY, w: r.box.w / maxX, h: r.box.h / maxY },
  }));
  // Excluded things never get a box.
  const kept = regions.filter((r) => !plan.exclude.some((x) => mentions(r.label, x)));
  if (kept.length < regions.length) warnings.push('dropped boxes of excluded things');
  return { ...plan, regions: kept };
}

function toScene(plan: WirePlan, size: { width: number; height: number }, limits: SceneLimits): Scene {
  const regions: Region[] = plan.regions.map((r, i) => ({
    id: `r${i + 1}`,
    label: clip(r.label, LIMITS.labelMax),
    prompt: clip(r.prompt.trim() || r.label, LIMITS.promptMax),
    box: r.box,
  }));
  const exclude = [...new Set(plan.exclude.map((x) => clip(x, LIMITS.labelMax)).filter(Boolean))].slice(
    0,
    LIMITS.excludeMax,
  );
  return normalizeScene(
    {
      width: size.width,
      height: size.height,
      prompt: clip(plan.prompt.trim() || regions.map((r) => r.label).join(', ') || 'a picture', LIMITS.promptMax * 2),
      background: clip(plan.background, LIMITS.promptMax),
      exclude,
      regions,
    },
    limits,
  );
}

/**
 * The LLM's styles on the scene: names checked against the list (an invented one is dropped with a warning).
 * toScene keeps the plan's regions in order, so the i-th region's styles are the plan's i-th.
 */
function withStyles(scene: Scene, plan: WirePlan, styles: StyleChoice[], warnings: string[]): Scene {
  if (!styles.length) return scene;
  const styled = plan as Partial<WirePlanStyled>;
  const regions = scene.regions.map((r, i) => {
    const loras = checkedStyles(styled.regions?.[i]?.styles, styles, warnings, `"${clip(r.label, 40)}"`);
    return loras.length ? { ...r, loras } : r;
  });
  const loras = checkedStyles(styled.styles, styles, warnings, 'the picture');
  return { ...scene, regions, ...(loras.length ? { loras } : {}) };
}

async function planWithLlm(
  llm: LlmClient,
  text: string,
  opts: PlanSceneOptions,
  limits: SceneLimits,
): Promise<PlanResult> {
  const side = opts.defaultSize ?? 1024;
  const fixed =
    opts.width !== undefined && opts.height !== undefined ? { width: opts.width, height: opts.height } : undefined;
  const shown = fixed ?? { width: side, height: side };
  const styles = opts.styles ?? [];
  // With styles the answer has style fields too; without, the request is exactly what it was before styles.
  const result = await llm.structured<WirePlan>({
    name: 'scene_layout',
    schema: styles.length ? WirePlanStyledSchema : WirePlan,
    messages: plannerMessages(text, { maxRegions: limits.maxRegions, ...shown, styles }),
    check: (p) => planProblems(p, text, limits.maxRegions),
    signal: opts.signal,
    purpose: 'plan',
  });
  const warnings: string[] = [];
  let plan = result.value;
  if (result.problems.length) {
    log.warn({ problems: result.problems }, 'the LLM plan still has problems after the repair turn; coercing');
    plan = coerce(plan, limits.maxRegions, warnings);
    for (const p of planProblems(plan, text, limits.maxRegions)) warnings.push(`LLM plan: ${p}`);
  }
  const size = fixed ?? (plan.aspect ? sizeForAspect(plan.aspect, side, limits) : shown);
  let scene: Scene;
  try {
    scene = validateScene(withStyles(toScene(plan, size, limits), plan, styles, warnings), limits);
  } catch (e) {
    throw new LlmError(`the LLM's layout is not a valid scene: ${(e as Error).message}`, 'invalid', { cause: e });
  }
  // Counts above the limit: whatever the LLM drew for them, the user hears that they are one group.
  const crowds: Crowd[] = describe(text, { maxCount: limits.maxRegions })
    .entities.filter((e) => e.crowd)
    .map((e) => {
      const label = scene.regions.find((r) => words(r.label).map(singularize).includes(e.head))?.label ?? e.label;
      return { label, count: e.crowd!.count, note: crowdNote(label, e.crowd!.count, limits.maxRegions) };
    });
  return { scene, source: 'llm', warnings: [...warnings, ...crowds.map((c) => c.note)], crowds };
}

export async function planScene(text: string, opts: PlanSceneOptions = {}): Promise<PlanResult> {
  const limits = opts.limits ?? DEFAULT_SCENE_LIMITS;
  checkDescription(text);
  const offline = (warnings: string[]): PlanResult => {
    const side = opts.defaultSize ?? 1024;
    // "… in the style of watercolor": the whole picture's style, and the rest of the text is planned as usual.
    const style = styleInDescription(text, opts.styles ?? []);
    const described = style?.rest || text;
    const r = planOffline(described, { width: opts.width ?? side, height: opts.height ?? side, limits });
    const scene = style ? { ...r.scene, loras: [{ name: style.style.name, scale: 1 }] } : r.scene;
    return { ...r, scene, warnings: [...warnings, ...r.warnings] };
  };
  if (opts.offline) return offline([]);
  if (!opts.llm) {
    if (opts.llmOnly)
      throw new LlmError('no LLM is configured: set OPENAI_API_KEY and/or OPENAI_BASE_URL', 'unreachable');
    const note = 'no LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL unset): using the offline planner';
    log.debug(note);
    return offline([note]);
  }
  try {
    return await planWithLlm(opts.llm, text, opts, limits);
  } catch (e) {
    if (opts.llmOnly || !(e instanceof LlmError) || e.reason === 'aborted') throw e;
    const note = `the LLM planner failed (${e.message}); used the offline planner`;
    log.warn({ reason: e.reason }, note);
    return offline([note]);
  }
}
