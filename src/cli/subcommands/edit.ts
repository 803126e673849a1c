import { readFileSync } from 'node:fs';
import { loadConfig, readEnvironment } from '../../config/config.ts';
import { plannerStyles } from '../loras.ts';
import { UserError } from '../../config/errors.ts';
import { planEdit } from '../../planner/editor.ts';
import { planScene, type PlanSceneOptions } from '../../planner/plan.ts';
import { applyEdit } from '../../scene/edit.ts';
import { parseSceneJSON, sceneToJSON } from '../../scene/json.ts';
import type { Edit, Scene } from '../../scene/schema.ts';
import { validateScene } from '../../scene/validate.ts';
import { runLineBatch } from '../batch.ts';
import { parseCommandArgs, type CliCommand } from '../command.ts';
import { describeScene, note, planningSetup } from './plan.ts';

const usage =
  'scenewright edit --scene <scene.json> "<instruction>" [--offline] [--json] [--llm-only] [--history "<earlier instruction>" ...]\n' +
  '       scenewright edit --batch <file> [--offline] [--llm-only]\n' +
  '       Prints the edited scene (the Scene JSON fields) plus: kind (change | start_over | clarify), edit (what\n' +
  '       changed), repaint (region ids to repaint), regenerate (true when boxes moved or the whole picture\n' +
  '       changed), reason, and question for clarify. Region ids stay stable; the output is a valid --scene input.\n' +
  '       --batch reads one {"scene": <Scene>, "instruction": "...", "history": [...]} JSON per line and prints one\n' +
  '       result JSON per line in input order; a line that fails prints {"error", "line"} and the batch goes on.\n' +
  '       Defaults: the LLM edits when OPENAI_* is configured (else the offline rules, with a note); no history.';

interface Edited {
  scene: Scene;
  extra: Record<string, unknown>;
  edit: Edit;
  source: string;
  warnings: string[];
}

/** One instruction applied to one scene: the edit, its result, and what to tell the user. */
async function editOne(scene: Scene, instruction: string, opts: PlanSceneOptions, history: string[]): Promise<Edited> {
  const result = await planEdit(scene, instruction, {
    llm: opts.llm,
    offline: opts.offline,
    llmOnly: opts.llmOnly,
    limits: opts.limits,
    history,
    ...(opts.styles?.length ? { styles: opts.styles } : {}),
  });
  const warnings = result.warnings.filter((w) => !/no LLM configured/.test(w));
  const edit = result.edit;
  if (edit.kind === 'change') {
    const applied = applyEdit(scene, edit);
    return {
      scene: applied.scene,
      edit,
      source: result.source,
      warnings,
      extra: {
        kind: 'change',
        edit,
        repaint: applied.repaint.map((r) => r.id),
        regenerate: applied.regenerate,
        reason: applied.reason,
      },
    };
  }
  if (edit.kind === 'start_over') {
    const planned = await planScene(edit.description, { ...opts, width: scene.width, height: scene.height });
    warnings.push(...planned.warnings.filter((w) => !/no LLM configured/.test(w)));
    return {
      scene: planned.scene,
      edit,
      source: result.source,
      warnings,
      extra: { kind: 'start_over', edit, repaint: [], regenerate: true, reason: 'a new picture' },
    };
  }
  return {
    scene,
    edit,
    source: result.source,
    warnings,
    extra: {
      kind: 'clarify',
      edit,
      question: edit.question,
      repaint: [],
      regenerate: false,
      reason: 'the instruction needs a clarification',
    },
  };
}

function resultJSON(r: Edited): string {
  return JSON.stringify({ ...(JSON.parse(sceneToJSON(r.scene)) as object), ...r.extra, source: r.source });
}

/** Reads one batch line: {scene, instruction, history?}; says which field is wrong and how to fix it. */
function batchItem(text: string, opts: PlanSceneOptions): { scene: Scene; instruction: string; history: string[] } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `not valid JSON (${(e as Error).message}): write one {"scene": {...}, "instruction": "..."} per line`,
      { cause: e },
    );
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new Error('each line must be a JSON object {"scene": {...}, "instruction": "..."}');
  const o = data as Record<string, unknown>;
  if (typeof o.instruction !== 'string' || !o.instruction.trim())
    throw new Error('"instruction" is missing or empty: give the change as text, e.g. "make the cat black"');
  if (o.scene === undefined) throw new Error('"scene" is missing: give the Scene JSON that `plan --json` prints');
  if (o.history !== undefined && !(Array.isArray(o.history) && o.history.every((h) => typeof h === 'string')))
    throw new Error('"history" must be a list of earlier instructions (strings)');
  let scene: Scene;
  try {
    scene = validateScene(o.scene, opts.limits);
  } catch (e) {
    throw new Error(`"scene" is not a valid scene: ${(e as Error).message}`, { cause: e });
  }
  return { scene, instruction: o.instruction.trim(), history: (o.history as string[] | undefined) ?? [] };
}

function runBatch(file: string, opts: PlanSceneOptions): Promise<number> {
  return runLineBatch(file, {
    parallel: opts.llm ? 4 : 1,
    async answer(input, line) {
      const item = batchItem(input, opts);
      const r = await editOne(item.scene, item.instruction, opts, item.history);
      for (const w of r.warnings) note(`line ${line}: ${w}`);
      return resultJSON(r);
    },
    failure: (error, _input, line) => JSON.stringify({ error, line }),
  });
}

export const command: CliCommand = {
  summary: 'apply an instruction ("change the left cat to a dog") to a scene; LLM or offline rules',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        scene: { type: 'string' },
        batch: { type: 'string' },
        offline: { type: 'boolean' },
        json: { type: 'boolean' },
        'llm-only': { type: 'boolean' },
        history: { type: 'string', multiple: true },
      },
      usage,
    );
    if (values.offline && values['llm-only']) throw new UserError('--offline and --llm-only contradict each other', 2);
    if (values.batch !== undefined) {
      if (values.scene || positionals.length || values.history)
        throw new UserError(
          '--batch reads scene, instruction and history from each line: give no --scene, --history or instruction',
          2,
        );
      const batchConfig = loadConfig(readEnvironment());
      const opts = { ...planningSetup(batchConfig, values), styles: await plannerStyles(batchConfig) };
      if (!values.offline && !opts.llm)
        note('no LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL unset): using the offline editor');
      return runBatch(values.batch, opts);
    }
    if (!values.scene) throw new UserError(`--scene <scene.json> is required\n\nusage: ${usage}`, 2);
    const instruction = positionals.join(' ').trim();
    if (!instruction)
      throw new UserError(`give an instruction, for example "change the left cat to a dog"\n\nusage: ${usage}`, 2);
    const config = loadConfig(readEnvironment());
    const opts = { ...planningSetup(config, values), styles: await plannerStyles(config) };
    let text: string;
    try {
      text = readFileSync(values.scene, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read the scene file ${values.scene}: ${(e as Error).message}`);
    }
    const scene = parseSceneJSON(text, opts.limits);
    if (!values.offline && !opts.llm)
      note('no LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL unset): using the offline editor');
    let r: Edited;
    try {
      r = await editOne(scene, instruction, opts, values.history ?? []);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
    for (const w of r.warnings) note(w);
    if (values.json) process.stdout.write(`${resultJSON(r)}\n`);
    else if (r.edit.kind === 'clarify') process.stdout.write(`question: ${r.edit.question}\n`);
    else
      process.stdout.write(
        `${r.edit.kind === 'start_over' ? 'start over' : `changed: ${(r.extra.repaint as string[]).join(', ') || '(global)'}${r.extra.regenerate ? ' (new generation)' : ' (repaint)'}`}\n${describeScene(r.scene)}\n`,
      );
    return 0;
  },
};
