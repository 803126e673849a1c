/**
 * A run's styles (docs/styles.md): the plan's LoRA files loaded through the engine's library, checked against the
 * step graph's limits before any step runs, and turned into the per-stream feeds each step picks from.
 */
import { UserError } from '../../config/errors.ts';
import { LORA_LIMITS } from '../../rag/params.ts';
import {
  checkLoraLimits,
  distinctLoraRefs,
  loraRun,
  planHasLoras,
  repeatRow,
  type LoraRun,
  type StepLora,
} from '../lora/feeds.ts';
import type { LoraLibrary } from '../lora/library.ts';
import type { StepRunner } from '../step/step-runner.ts';
import type { RunPlan } from './run-plan.ts';

export async function prepareLora(
  plan: RunPlan,
  library: LoraLibrary | undefined,
  runner: StepRunner,
  grid: { rows: number; cols: number },
): Promise<LoraRun | undefined> {
  if (!plan.loras || !planHasLoras(plan.loras)) return undefined;
  const refs = distinctLoraRefs(plan.loras);
  // Counted before any file is read: a job over the limit costs nothing.
  if (refs.length > LORA_LIMITS.maxLoras)
    throw new UserError(
      `this job uses ${refs.length} styles (LoRA files at distinct scales); the engine takes at most ${LORA_LIMITS.maxLoras}: drop some styles or use one scale per style`,
    );
  if (!library) throw new UserError('this engine was opened without LoRA support; paint without styles');
  const files = await library.load(refs);
  const entries = refs.map((r, i) => ({ file: files[i]!, scale: r.scale, name: r.name }));
  checkLoraLimits(entries, runner.loraLayers);
  return loraRun(plan.loras, entries, {
    ...grid,
    ...(plan.repaint ? { repaintMask: plan.repaint.mask.tokens } : {}),
  });
}

/** Which rows a step's streams take (the streams it carries decide it). */
export function stepLora(
  run: LoraRun,
  s: { boxes: boolean; prepass: boolean; repaint: boolean; prepassAsMain?: number },
): StepLora {
  const { rows } = run;
  const common = { layers: run.layers, count: run.entries.length };
  // A stored-mode repaint runs its pre-pass as the main stream before R: the repaint's styles on every token.
  if (s.prepassAsMain !== undefined)
    return { ...common, main: { img: repeatRow(rows.repaint, s.prepassAsMain), txt: rows.repaint }, regional: [] };
  return {
    ...common,
    main: { img: run.mainImg, txt: rows.global },
    ...(s.repaint ? { repaint: { img: run.repaintImg!, txt: rows.global } } : {}),
    regional: [...(s.boxes ? rows.boxes : []), ...(s.prepass ? [rows.repaint] : [])],
  };
}
