/** The forms a model folder's weights run in: WEIGHTS (src/config/weight-forms.ts), else the folder's defaults. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { UserError } from '../../config/errors.ts';
import path from 'node:path';
import { AS_STORED, parseWeightForms, type WeightForms } from '../../config/weight-forms.ts';

export {
  AS_STORED,
  defaultWeightsCacheDir,
  parseWeightForms,
  WEIGHT_FORMS,
  type WeightComponent,
  type WeightForm,
  type WeightForms,
} from '../../config/weight-forms.ts';

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
