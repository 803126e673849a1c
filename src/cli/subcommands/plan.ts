import { loadConfig, readEnvironment, type Config } from '../../config/config.ts';
import { UserError } from '../../config/errors.ts';
import { llmFromConfig, type LlmClient } from '../../planner/llm.ts';
import type { Crowd } from '../../planner/offline.ts';
import { planScene, type PlanSceneOptions } from '../../planner/plan.ts';
import { sizeForAspect } from '../../scene/normalize.ts';
import { sceneToJSON } from '../../scene/json.ts';
import type { Scene } from '../../scene/schema.ts';
import { runLineBatch } from '../batch.ts';
import { intOption, parseCommandArgs, type CliCommand } from '../command.ts';

const usage =
  'scenewright plan "<scene text>" [--offline] [--json] [--llm-only] [--width W --height H | --aspect 16:9]\n' +
  '       scenewright plan --batch <file, one scene per line> [--offline] --json\n' +
  '       Without --offline the LLM plans (OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL); with none configured,\n' +
  '       or when it fails, the offline planner does (a note on stderr) unless --llm-only.\n' +
  '       --batch prints one Scene JSON per line in input order; a line that fails prints {"error": ...} and the\n' +
  '       batch goes on (blank lines are skipped).\n' +
  '       Defaults: DEFAULT_SIZE square (1024×1024), unless the LLM planner picks the aspect the text asks\n' +
  '       for; --aspect keeps about DEFAULT_SIZE² pixels (16:9 → 1360×768), within MIN_SIZE…MAX_SIZE, on the 16-px grid.';

/** Shared by plan and edit: the LLM (unless offline), the scene limits and the requested size. */
export function planningSetup(
  config: Config,
  values: { offline?: boolean; 'llm-only'?: boolean; width?: string; height?: string; aspect?: string },
): PlanSceneOptions {
  const limits = {
    maxRegions: config.limits.maxRegions,
    minSize: config.limits.minSize,
    maxSize: config.limits.maxSize,
  };
  const width = intOption(values.width, 'width', limits.minSize, limits.maxSize);
  const height = intOption(values.height, 'height', limits.minSize, limits.maxSize);
  if ((width === undefined) !== (height === undefined))
    throw new UserError('give both --width and --height, or neither', 2);
  let size = width !== undefined && height !== undefined ? { width, height } : undefined;
  if (size && (size.width % 16 || size.height % 16))
    throw new UserError(
      `--width and --height must be multiples of 16 (FLUX works on 16-px tokens): try ${Math.round(size.width / 16) * 16}×${Math.round(size.height / 16) * 16}`,
      2,
    );
  if (values.aspect) {
    if (size) throw new UserError('give --aspect or --width/--height, not both', 2);
    try {
      size = sizeForAspect(values.aspect, config.limits.defaultSize, limits);
    } catch (e) {
      throw new UserError((e as Error).message, 2);
    }
  }
  const llm: LlmClient | undefined = values.offline ? undefined : llmFromConfig(config.llm);
  return {
    llm,
    offline: values.offline,
    llmOnly: values['llm-only'],
    limits,
    defaultSize: config.limits.defaultSize,
    ...size,
  };
}

export function note(message: string): void {
  process.stderr.write(`note: ${message}\n`);
}

export function describeScene(scene: Scene): string {
  const pct = (v: number) => v.toFixed(3);
  const lines = [
    `size:       ${scene.width}×${scene.height}`,
    `prompt:     ${scene.prompt}`,
    `background: ${scene.background || '(none)'}`,
    `exclude:    ${scene.exclude.length ? scene.exclude.join(', ') : '(nothing)'}`,
    `regions:    ${scene.regions.length}`,
    ...scene.regions.map(
      (r) =>
        `  ${r.id.padEnd(4)} ${r.label}\n       box x=${pct(r.box.x)} y=${pct(r.box.y)} w=${pct(r.box.w)} h=${pct(r.box.h)}\n       ${r.prompt}`,
    ),
  ];
  return lines.join('\n');
}

/** Groups drawn as one region, for the text output (the notes also go to stderr). */
function crowdLines(crowds: Crowd[]): string {
  return crowds.map((c) => `group:      ${c.label}: ${c.note}\n`).join('');
}

function runBatch(file: string, opts: PlanSceneOptions, json: boolean): Promise<number> {
  return runLineBatch(file, {
    parallel: opts.llm ? 4 : 1,
    async answer(input, line) {
      const r = await planScene(input, opts);
      for (const w of r.warnings) note(`line ${line}: ${w}`);
      return json
        ? sceneToJSON(r.scene)
        : `# line ${line} (${r.source})\n${describeScene(r.scene)}\n${crowdLines(r.crowds)}`;
    },
    failure: (error, input, line) =>
      json ? JSON.stringify({ error, line, input }) : `# line ${line}: error: ${error}\n`,
  });
}

export const command: CliCommand = {
  summary: 'plan a scene (regions, boxes, prompts) from a description; LLM or offline rules',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        offline: { type: 'boolean' },
        json: { type: 'boolean' },
        batch: { type: 'string' },
        'llm-only': { type: 'boolean' },
        width: { type: 'string' },
        height: { type: 'string' },
        aspect: { type: 'string' },
      },
      usage,
    );
    if (values.offline && values['llm-only']) throw new UserError('--offline and --llm-only contradict each other', 2);
    const config = loadConfig(readEnvironment());
    const { plannerStyles } = await import('../loras.ts');
    const opts = { ...planningSetup(config, values), styles: await plannerStyles(config) };
    if (!values.offline && !opts.llm)
      note('no LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL unset): using the offline planner');
    if (values.batch !== undefined) {
      if (positionals.length) throw new UserError('give either --batch <file> or a scene text, not both', 2);
      return runBatch(values.batch, opts, values.json ?? false);
    }
    const text = positionals.join(' ').trim();
    if (!text) throw new UserError(`give a scene description\n\nusage: ${usage}`, 2);
    let result;
    try {
      result = await planScene(text, opts);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
    for (const w of result.warnings) if (!/no LLM configured/.test(w)) note(w);
    if (values.json) process.stdout.write(`${sceneToJSON(result.scene)}\n`);
    else
      process.stdout.write(
        `planned by: ${result.source === 'llm' ? `the LLM (${config.llm.model})` : 'the offline planner'}\n${describeScene(result.scene)}\n${crowdLines(result.crowds)}`,
      );
    return 0;
  },
};
