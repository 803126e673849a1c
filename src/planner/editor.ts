/**
 * planEdit: (Scene, instruction, short history) → Edit. The LLM proposes the edit and names, for every
 * phrase that points at regions, the ids it chose; the deterministic resolver then checks those choices:
 * a reference it can pin down overrides a different LLM choice, and a reference it finds ambiguous turns the
 * edit into a clarifying question instead of a wrong repaint. Ids stay stable (applyEdit keeps them).
 * Without an LLM, or when it fails, the offline editor answers (unless the caller asked for the LLM only).
 */
import { applyEdit } from '../scene/edit.ts';
import { EditSchema, LIMITS, type Box, type Edit, type Scene } from '../scene/schema.ts';
import { DEFAULT_SCENE_LIMITS, SceneError, type SceneLimits } from '../scene/validate.ts';
import { childLogger } from '../log/logger.ts';
import { LlmError, type LlmClient } from './llm.ts';
import { clip } from './offline.ts';
import { editOffline, type EditResult } from './offline-edit.ts';
import { looksEnglish } from './offline-parse.ts';
import { editorMessages } from './prompts.ts';
import { resolveReference } from './resolve.ts';
import { checkedStyles, styleEdit, type StyleChoice } from './styles.ts';
import type { WireEdit } from './wire.ts';
import { WireEdit as WireEditSchema, WireEditStyled } from './wire.ts';

const log = childLogger('editor');

export interface PlanEditOptions {
  llm?: LlmClient;
  offline?: boolean;
  llmOnly?: boolean;
  /** Earlier instructions in this conversation, oldest first (the last three are sent). */
  history?: string[];
  /** Regions the previous edit was about ("it", "them"). */
  lastIds?: string[];
  limits?: SceneLimits;
  signal?: AbortSignal;
  /** The styles there are (LORA_DIR): a region or the picture may be given one ("make the cat a watercolor"). */
  styles?: StyleChoice[];
}

const EPS = 0.01;

function boxProblem(b: Box, who: string): string | undefined {
  const { x, y, w, h } = b;
  if (![x, y, w, h].every(Number.isFinite) || w <= 0 || h <= 0)
    return `${who}: the box needs a positive width and height`;
  if (x < -EPS || y < -EPS || x + w > 1 + EPS || y + h > 1 + EPS)
    return `${who}: the box {x: ${x}, y: ${y}, w: ${w}, h: ${h}} is outside the image: fractions between 0 and 1, x + w ≤ 1, y + h ≤ 1`;
  return undefined;
}

export function editProblems(e: WireEdit, scene: Scene, maxRegions: number): string[] {
  const out: string[] = [];
  const ids = new Set(scene.regions.map((r) => r.id));
  const known = [...ids].join(', ') || 'none';
  if (e.kind === 'clarify' && !e.question?.trim())
    out.push('kind is "clarify" but question is empty: ask one short question');
  if (e.kind === 'start_over' && !e.description?.trim())
    out.push('kind is "start_over" but description is empty: describe the new picture');
  if (e.kind !== 'change') return out;
  for (const u of e.update) {
    if (!ids.has(u.id)) out.push(`update names region "${u.id}", which is not in the layout (ids: ${known})`);
    if (u.box) {
      const p = boxProblem(u.box, `update of "${u.id}"`);
      if (p) out.push(p);
    }
    if (u.label !== null && !u.label.trim()) out.push(`update of "${u.id}": an empty label; use null to keep it`);
  }
  for (const id of e.remove)
    if (!ids.has(id)) out.push(`remove names region "${id}", which is not in the layout (ids: ${known})`);
  e.add.forEach((a, i) => {
    if (!a.label.trim()) out.push(`add[${i}] has an empty label`);
    const p = boxProblem(a.box, `add[${i}] ("${clip(a.label, 40)}")`);
    if (p) out.push(p);
  });
  const after = scene.regions.length - new Set(e.remove.filter((id) => ids.has(id))).size + e.add.length;
  if (after > maxRegions) out.push(`the edit leaves ${after} regions; at most ${maxRegions} are allowed`);
  const restyled = (x: unknown) => (x as { styles?: unknown }).styles != null;
  const nothing =
    !e.update.some((u) => u.label !== null || u.prompt !== null || u.box !== null || restyled(u)) &&
    !restyled(e) &&
    !e.add.length &&
    !e.remove.length &&
    e.prompt === null &&
    e.background === null &&
    e.exclude === null;
  if (nothing)
    out.push('the change changes nothing: if the instruction is unclear, use kind "clarify" with a question');
  const written = [
    e.prompt ?? '',
    e.background ?? '',
    ...e.update.map((u) => `${u.label ?? ''} ${u.prompt ?? ''}`),
    ...e.add.map((a) => `${a.label} ${a.prompt}`),
  ].join(' ');
  if (written.trim() && !looksEnglish(written)) out.push('write labels, prompts and captions in English');
  return out;
}

const clampBox = (b: Box): Box => {
  const w = Math.min(Math.max(b.w, 0.02), 1),
    h = Math.min(Math.max(b.h, 0.02), 1);
  return { x: Math.min(Math.max(b.x, 0), 1 - w), y: Math.min(Math.max(b.y, 0), 1 - h), w, h };
};

/** Drops what cannot be applied and clamps boxes: used only when the repair turn did not fix things. */
function coerce(e: WireEdit, scene: Scene, warnings: string[]): WireEdit {
  const ids = new Set(scene.regions.map((r) => r.id));
  const update = e.update
    .filter((u) => ids.has(u.id))
    .map((u) => ({
      ...u,
      label: u.label?.trim() ? u.label : null,
      box: u.box && [u.box.x, u.box.y, u.box.w, u.box.h].every(Number.isFinite) ? clampBox(u.box) : null,
    }));
  const remove = e.remove.filter((id) => ids.has(id));
  const add = e.add
    .filter((a) => a.label.trim() && [a.box.x, a.box.y, a.box.w, a.box.h].every(Number.isFinite))
    .map((a) => ({ ...a, box: clampBox(a.box) }));
  if (update.length < e.update.length || remove.length < e.remove.length || add.length < e.add.length)
    warnings.push('dropped parts of the LLM edit that named unknown regions or had unusable boxes');
  return { ...e, update, remove, add };
}

/**
 * The resolver's word on every reference. Returns a question when a reference is ambiguous, otherwise the
 * edit with ids corrected where the resolver pins down a different region than the LLM chose.
 */
export function checkReferences(
  e: WireEdit,
  scene: Scene,
  lastIds: string[] | undefined,
  warnings: string[],
): { edit: WireEdit } | { question: string } {
  if (e.kind !== 'change') return { edit: e };
  const swap = new Map<string, string>();
  for (const ref of e.references) {
    const res = resolveReference(scene, ref.text, { lastIds });
    if (res.kind === 'ambiguous') return { question: res.question };
    if (res.kind === 'unique' && !(ref.ids.length === 1 && ref.ids[0] === res.id)) {
      for (const id of ref.ids) swap.set(id, res.id);
      if (!ref.ids.length) continue;
      warnings.push(`"${ref.text}" means ${res.id}, not ${ref.ids.join(', ')}: corrected the LLM's choice`);
    }
  }
  if (!swap.size) return { edit: e };
  const map = (id: string) => swap.get(id) ?? id;
  const seen = new Set<string>();
  const update = e.update.map((u) => ({ ...u, id: map(u.id) })).filter((u) => !seen.has(u.id) && seen.add(u.id));
  return { edit: { ...e, update, remove: [...new Set(e.remove.map(map))] } };
}

function toEdit(e: WireEdit): Edit {
  if (e.kind === 'clarify') return { kind: 'clarify', question: clip(e.question ?? 'What should I change?', 500) };
  if (e.kind === 'start_over') return { kind: 'start_over', description: clip(e.description ?? '', 2000) };
  const nn = <T>(v: T | null): T | undefined => (v === null ? undefined : v);
  return EditSchema.parse({
    kind: 'change',
    update: e.update.map((u) => ({
      id: u.id,
      label: u.label === null ? undefined : clip(u.label, LIMITS.labelMax),
      prompt: u.prompt === null ? undefined : clip(u.prompt, LIMITS.promptMax),
      box: nn(u.box),
    })),
    add: e.add.map((a) => ({
      label: clip(a.label, LIMITS.labelMax),
      prompt: clip(a.prompt.trim() || a.label, LIMITS.promptMax),
      box: a.box,
    })),
    remove: e.remove,
    prompt: e.prompt === null || !e.prompt.trim() ? undefined : clip(e.prompt, LIMITS.promptMax * 2),
    background: e.background === null ? undefined : clip(e.background, LIMITS.promptMax),
    exclude: nn(e.exclude)
      ?.map((x) => clip(x, LIMITS.labelMax))
      .filter(Boolean)
      .slice(0, LIMITS.excludeMax),
  });
}

/**
 * The styles the LLM set (names it invented dropped), on the regions it updated, its new regions and the picture.
 * An empty list clears styles; a list whose every name was invented changes nothing (a misspelt name must not
 * remove the style a region has).
 */
function withStyles(edit: Edit, wire: WireEdit, styles: StyleChoice[], warnings: string[]): Edit {
  if (edit.kind !== 'change' || !styles.length) return edit;
  const styled = wire as Partial<WireEditStyled>;
  const restyle = (w: WireEditStyled['styles'] | undefined, who: string) => {
    if (w === null || w === undefined) return undefined;
    const loras = checkedStyles(w, styles, warnings, who);
    return w.length > 0 && loras.length === 0 ? undefined : loras;
  };
  const update = edit.update.map((u) => {
    const loras = restyle(styled.update?.find((x) => x.id === u.id)?.styles, `region ${u.id}`);
    return loras === undefined ? u : { ...u, loras };
  });
  const add = edit.add.map((a, i) => {
    const loras = checkedStyles(styled.add?.[i]?.styles, styles, warnings, `the new region "${a.label}"`);
    return loras.length ? { ...a, loras } : a;
  });
  const picture = restyle(styled.styles, 'the picture');
  return { ...edit, update, add, ...(picture === undefined ? {} : { loras: picture }) };
}

function targetsOf(e: WireEdit): string[] {
  return [...new Set([...e.update.map((u) => u.id), ...e.remove, ...e.references.flatMap((r) => r.ids)])];
}

async function editWithLlm(
  llm: LlmClient,
  scene: Scene,
  instruction: string,
  opts: PlanEditOptions,
  limits: SceneLimits,
): Promise<EditResult> {
  const styles = opts.styles ?? [];
  // With styles the answer has style fields too; without, the request is exactly what it was before styles.
  const result = await llm.structured<WireEdit>({
    name: 'layout_edit',
    schema: styles.length ? WireEditStyled : WireEditSchema,
    messages: editorMessages(scene, instruction, opts.history ?? [], { maxRegions: limits.maxRegions, styles }),
    check: (e) => editProblems(e, scene, limits.maxRegions),
    signal: opts.signal,
    purpose: 'edit',
  });
  const warnings: string[] = [];
  let wire = result.value;
  if (result.problems.length) {
    log.warn({ problems: result.problems }, 'the LLM edit still has problems after the repair turn; coercing');
    wire = coerce(wire, scene, warnings);
    const left = editProblems(wire, scene, limits.maxRegions);
    if (left.some((p) => /at most \d+ are allowed/.test(p)))
      throw new LlmError(`the LLM edit is not usable: ${left.join('; ')}`, 'invalid');
    if (left.some((p) => /changes nothing/.test(p)))
      wire = {
        ...wire,
        kind: 'clarify',
        question: `I couldn't tell what to change. Could you say it another way, for example "change the left cat to a dog"?`,
      };
  }
  const checked = checkReferences(wire, scene, opts.lastIds, warnings);
  if ('question' in checked) {
    return { edit: { kind: 'clarify', question: checked.question }, source: 'llm', warnings, targets: [] };
  }
  let edit: Edit;
  try {
    edit = withStyles(toEdit(checked.edit), checked.edit, styles, warnings);
    if (edit.kind === 'change') applyEdit(scene, edit);
  } catch (e) {
    const detail = e instanceof SceneError ? e.message : (e as Error).message;
    throw new LlmError(`the LLM edit cannot be applied: ${detail}`, 'invalid', { cause: e });
  }
  return { edit, source: 'llm', warnings, targets: targetsOf(checked.edit) };
}

export async function planEdit(scene: Scene, instruction: string, opts: PlanEditOptions = {}): Promise<EditResult> {
  const limits = opts.limits ?? DEFAULT_SCENE_LIMITS;
  const offline = (warnings: string[]): EditResult => {
    const styled = styleEdit(scene, instruction, opts.styles ?? [], opts.lastIds, limits);
    if (styled) return { edit: styled.edit, source: 'offline', warnings, targets: styled.targets };
    const r = editOffline(scene, instruction, { lastIds: opts.lastIds, limits });
    return { ...r, warnings: [...warnings, ...r.warnings] };
  };
  if (!instruction.trim())
    return {
      edit: { kind: 'clarify', question: 'What should I change?' },
      source: 'offline',
      warnings: [],
      targets: [],
    };
  if (opts.offline) return offline([]);
  if (!opts.llm) {
    if (opts.llmOnly)
      throw new LlmError('no LLM is configured: set OPENAI_API_KEY and/or OPENAI_BASE_URL', 'unreachable');
    const note = 'no LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL unset): using the offline editor';
    log.debug(note);
    return offline([note]);
  }
  try {
    return await editWithLlm(opts.llm, scene, instruction, opts, limits);
  } catch (e) {
    if (opts.llmOnly || !(e instanceof LlmError) || e.reason === 'aborted') throw e;
    const note = `the LLM editor failed (${e.message}); used the offline editor`;
    log.warn({ reason: e.reason }, note);
    return offline([note]);
  }
}
