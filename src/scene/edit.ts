import { SceneError } from './validate.ts';
import type { Box, Edit, Region, Scene, StyleRef } from './schema.ts';

export interface AppliedEdit {
  scene: Scene;
  /** Regions whose content changed in place: only these need repainting. */
  repaint: { id: string; oldBox?: Box; newBox?: Box }[];
  /** A box moved or the whole picture changed: repaint cannot express it, paint a new generation. */
  regenerate: boolean;
  reason: string;
}

function sameBox(a: Box, b: Box): boolean {
  return (
    Math.abs(a.x - b.x) < 1e-9 && Math.abs(a.y - b.y) < 1e-9 && Math.abs(a.w - b.w) < 1e-9 && Math.abs(a.h - b.h) < 1e-9
  );
}

/** Same styles in the same order at the same scales (hashes aside: they pin files, not choices). */
export function sameStyles(a: StyleRef[] | undefined, b: StyleRef[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((s, i) => s.name === y[i]!.name && s.scale === y[i]!.scale);
}

/** `o` with `loras` set, or without the key when there are none (a style-less scene stays as it was). */
function withStyles<T extends { loras?: StyleRef[] }>(o: T, loras: StyleRef[] | undefined): T {
  const { loras: _old, ...rest } = o;
  return (loras?.length ? { ...rest, loras } : rest) as T;
}

/** Picks the smallest unused id of the form r<N>, so ids stay short and stable across edits. */
export function nextRegionId(taken: Iterable<string>): string {
  const used = new Set(taken);
  for (let i = 1; ; i++) if (!used.has(`r${i}`)) return `r${i}`;
}

/**
 * Applies a `change` edit. Ids of kept regions never change; added regions get fresh ids. A changed
 * background or exclusion list, a moved box, or a new global prompt on its own means a new generation; label
 * and prompt changes, additions and removals (with or without a matching new caption) are repaints of the
 * affected boxes.
 */
export function applyEdit(scene: Scene, edit: Extract<Edit, { kind: 'change' }>): AppliedEdit {
  const problems: string[] = [];
  const byId = new Map(scene.regions.map((r) => [r.id, r] as const));
  for (const u of edit.update)
    if (!byId.has(u.id)) problems.push(`the edit changes region "${u.id}", which is not in the layout`);
  for (const id of edit.remove)
    if (!byId.has(id)) problems.push(`the edit removes region "${id}", which is not in the layout`);
  if (problems.length) throw new SceneError(problems);

  const repaint: AppliedEdit['repaint'] = [];
  let moved = false;
  const removed = new Set(edit.remove);
  const regions: Region[] = [];
  for (const r of scene.regions) {
    if (removed.has(r.id)) {
      repaint.push({ id: r.id, oldBox: r.box });
      continue;
    }
    const u = edit.update.find((x) => x.id === r.id);
    if (!u) {
      regions.push(r);
      continue;
    }
    const next: Region = withStyles(
      { ...r, label: u.label ?? r.label, prompt: u.prompt ?? u.label ?? r.prompt, box: u.box ?? r.box },
      u.loras ?? r.loras,
    );
    const boxMoved = u.box !== undefined && !sameBox(u.box, r.box);
    moved ||= boxMoved;
    // A new style for a region repaints it, like a new prompt does.
    const restyled = !sameStyles(next.loras, r.loras);
    if (next.label !== r.label || next.prompt !== r.prompt || boxMoved || restyled)
      repaint.push({ id: r.id, oldBox: r.box, newBox: next.box });
    regions.push(next);
  }
  for (const a of edit.add) {
    const id = nextRegionId([...byId.keys(), ...regions.map((r) => r.id)]);
    regions.push({ id, ...a });
    repaint.push({ id, newBox: a.box });
  }
  const next: Scene = withStyles(
    {
      ...scene,
      prompt: edit.prompt ?? scene.prompt,
      background: edit.background ?? scene.background,
      exclude: edit.exclude ?? scene.exclude,
      regions,
    },
    edit.loras ?? scene.loras,
  );
  // A new caption that comes with in-place region changes is the repaint's caption (RAG's Repainting_prompt:
  // "a dog and a black cat" after the tabby cat became a dog); on its own it restyles the whole picture.
  const captionOnly = next.prompt !== scene.prompt && repaint.length === 0;
  // A whole-picture style touches every pixel: a new generation, never a repaint.
  const global =
    captionOnly ||
    next.background !== scene.background ||
    next.exclude.join('\u0000') !== scene.exclude.join('\u0000') ||
    !sameStyles(next.loras, scene.loras);
  const regenerate = global || moved;
  const reason = moved
    ? 'a region moved'
    : global
      ? 'the whole picture changed'
      : repaint.length
        ? 'regions changed in place'
        : 'nothing changed';
  return { scene: next, repaint, regenerate, reason };
}
