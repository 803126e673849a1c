/**
 * The WEIGHTS setting: which form each component's weights run in. Plain vocabulary, parsed by the configuration
 * and taken by the engine (src/engine/weights/forms.ts), so neither needs the other.
 */
import os from 'node:os';
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

/** The default weights cache: $XDG_CACHE_HOME/scenewright/weights, else ~/.cache/scenewright/weights. */
export function defaultWeightsCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'scenewright', 'weights');
}
