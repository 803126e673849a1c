/** The forms weights can run in (config WEIGHTS), parsed without loading any engine code. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { UserError } from '../../config/errors.ts';
import path from 'node:path';

/** What a component's weights become: as stored ("auto"), or this form (README "Memory"). */
export type WeightForm = 'auto' | 'bf16' | 'int8' | 'int4';
export const WEIGHT_FORMS: WeightForm[] = ['auto', 'bf16', 'int8', 'int4'];

export type WeightComponent = 'transformer' | 'text_encoder_2' | 'text_encoder';
export type WeightForms = Record<WeightComponent, WeightForm>;

export const AS_STORED: WeightForms = { transformer: 'auto', text_encoder_2: 'auto', text_encoder: 'auto' };

const ALIASES: Record<string, WeightComponent> = {
  transformer: 'transformer',
  t5: 'text_encoder_2',
  text_encoder_2: 'text_encoder_2',
  clip: 'text_encoder',
  text_encoder: 'text_encoder',
};

/**
 * `int4` (the transformer and T5), or per component: `transformer:int4,t5:int8` (`=` works too; clip/text_encoder,
 * t5/text_encoder_2). CLIP (0.1 G parameters) stays as stored unless named. Throws a message listing the problem.
 */
export function parseWeightForms(text: string | undefined): WeightForms {
  const forms = { ...AS_STORED };
  if (!text) return forms;
  const isForm = (v: string): v is WeightForm => (WEIGHT_FORMS as string[]).includes(v);
  for (const item of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [key, value] =
      item.includes(':') || item.includes('=')
        ? (item.split(/[:=]/, 2).map((s) => s.trim()) as [string, string])
        : [undefined, item];
    if (!isForm(value)) throw new Error(`"${value}" is not a weights form (use ${WEIGHT_FORMS.join(', ')})`);
    if (key === undefined) {
      forms.transformer = value;
      forms.text_encoder_2 = value;
      continue;
    }
    const c = ALIASES[key];
    if (!c) throw new Error(`"${key}" is not a component (use transformer, t5 or clip)`);
    forms[c] = value;
  }
  return forms;
}

/** A model folder's own prepared weights (make-tiny-model --weights int8|int4 writes them), read-only to the engine. */
export const PREPARED_FOLDER = 'scenewright-prepared';
/** A model folder's default WEIGHTS, as JSON {"weights": "transformer:int4,t5:int8"}; config WEIGHTS wins over it. */
export const FOLDER_DEFAULTS_FILE = 'scenewright.json';

/** The forms to run a model folder in: WEIGHTS when set, else the folder's scenewright.json, else as stored. */
export function formsFor(
  modelDir: string,
  configured: Partial<WeightForms> | undefined,
): { forms: WeightForms; from: 'WEIGHTS' | 'folder' | 'default' } {
  const set = configured && Object.values(configured).some((f) => f && f !== 'auto');
  if (set) return { forms: { ...AS_STORED, ...configured }, from: 'WEIGHTS' };
  const file = path.join(modelDir, FOLDER_DEFAULTS_FILE);
  if (existsSync(file) && statSync(modelDir).isDirectory()) {
    let text: unknown;
    try {
      text = (JSON.parse(readFileSync(file, 'utf8')) as { weights?: unknown }).weights;
    } catch (e) {
      throw new UserError(`${file}: not valid JSON (${(e as Error).message}); fix it or delete it`, 1, { cause: e });
    }
    if (typeof text !== 'string')
      throw new UserError(`${file}: "weights" must be a string like "transformer:int4,t5:int8"`);
    try {
      return { forms: parseWeightForms(text), from: 'folder' };
    } catch (e) {
      throw new UserError(`${file}: ${(e as Error).message}`, 1, { cause: e });
    }
  }
  return { forms: { ...AS_STORED }, from: 'default' };
}

/** The default weights cache: $XDG_CACHE_HOME/scenewright/weights, else ~/.cache/scenewright/weights. */
export function defaultWeightsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'scenewright', 'weights');
}
