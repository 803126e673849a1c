import { readFileSync } from 'node:fs';
import { loadConfig, readEnvironment } from '../../config/config.ts';
import { UserError } from '../../config/errors.ts';
import { planEdit } from '../../planner/editor.ts';
import { planScene } from '../../planner/plan.ts';
import { applyEdit } from '../../scene/edit.ts';
import { parseSceneJSON, sceneToJSON } from '../../scene/json.ts';
import type { Scene } from '../../scene/schema.ts';
import { parseCommandArgs, type CliCommand } from '../command.ts';
import { describeScene, note, planningSetup } from './plan.ts';

const usage =
  'scenewright edit --scene <scene.json> "<instruction>" [--offline] [--json] [--llm-only] [--history "<earlier instruction>" ...]\n' +
  '       Prints the edited scene (the Scene JSON fields) plus: kind (change | start_over | clarify), edit (what\n' +
  '       changed), repaint (region ids to repaint), regenerate (true when boxes moved or the whole picture\n' +
  '       changed), reason, and question for clarify. Region ids stay stable; the output is a valid --scene input.';

export const command: CliCommand = {
  summary: 'apply an instruction ("change the left cat to a dog") to a scene; LLM or offline rules',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        scene: { type: 'string' },
        offline: { type: 'boolean' },
        json: { type: 'boolean' },
        'llm-only': { type: 'boolean' },
        history: { type: 'string', multiple: true },
      },
      usage,
    );
    if (!values.scene) throw new UserError(`--scene <scene.json> is required\n\nusage: ${usage}`, 2);
    const instruction = positionals.join(' ').trim();
    if (!instruction)
      throw new UserError(`give an instruction, for example "change the left cat to a dog"\n\nusage: ${usage}`, 2);
    if (values.offline && values['llm-only']) throw new UserError('--offline and --llm-only contradict each other', 2);
    const config = loadConfig(readEnvironment());
    const opts = planningSetup(config, values);
    let text: string;
    try {
      text = readFileSync(values.scene, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read the scene file ${values.scene}: ${(e as Error).message}`);
    }
    const scene = parseSceneJSON(text, opts.limits);
    if (!values.offline && !opts.llm)
      note('no LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL unset): using the offline editor');
    let result;
    try {
      result = await planEdit(scene, instruction, {
        llm: opts.llm,
        offline: opts.offline,
        llmOnly: opts.llmOnly,
        limits: opts.limits,
        history: values.history ?? [],
      });
    } catch (e) {
      throw new UserError((e as Error).message);
    }
    for (const w of result.warnings) if (!/no LLM configured/.test(w)) note(w);
    const edit = result.edit;
    let out: Scene = scene;
    let extra: Record<string, unknown>;
    if (edit.kind === 'change') {
      const applied = applyEdit(scene, edit);
      out = applied.scene;
      extra = {
        kind: 'change',
        edit,
        repaint: applied.repaint.map((r) => r.id),
        regenerate: applied.regenerate,
        reason: applied.reason,
      };
    } else if (edit.kind === 'start_over') {
      const planned = await planScene(edit.description, { ...opts, width: scene.width, height: scene.height });
      for (const w of planned.warnings) if (!/no LLM configured/.test(w)) note(w);
      out = planned.scene;
      extra = { kind: 'start_over', edit, repaint: [], regenerate: true, reason: 'a new picture' };
    } else {
      extra = {
        kind: 'clarify',
        edit,
        question: edit.question,
        repaint: [],
        regenerate: false,
        reason: 'the instruction needs a clarification',
      };
    }
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ ...(JSON.parse(sceneToJSON(out)) as object), ...extra, source: result.source })}\n`,
      );
    } else if (edit.kind === 'clarify') {
      process.stdout.write(`question: ${edit.question}\n`);
    } else {
      process.stdout.write(
        `${edit.kind === 'start_over' ? 'start over' : `changed: ${(extra.repaint as string[]).join(', ') || '(global)'}${extra.regenerate ? ' (new generation)' : ' (repaint)'}`}\n${describeScene(out)}\n`,
      );
    }
    return 0;
  },
};
