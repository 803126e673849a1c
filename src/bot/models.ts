import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ModelChoice {
  id: string;
  name: string;
  defaultSteps: number;
}

// Used when models/ has no manifests (the numbers are the official defaults of each model).
const FALLBACK: ModelChoice[] = [
  { id: 'flux.1-schnell', name: 'FLUX.1 [schnell]', defaultSteps: 4 },
  { id: 'flux.1-dev', name: 'FLUX.1 [dev]', defaultSteps: 20 },
];

const MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../models');

/** The models a user may name in /imagine and /settings, from the manifests in models/. */
export function modelChoices(dir = MODELS_DIR): ModelChoice[] {
  const out: ModelChoice[] = [];
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch {
    return FALLBACK;
  }
  for (const f of files) {
    try {
      const m = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as {
        id?: unknown;
        name?: unknown;
        defaults?: { num_inference_steps?: unknown };
      };
      const steps = Number(m.defaults?.num_inference_steps);
      if (typeof m.id === 'string' && Number.isInteger(steps) && steps > 0) {
        out.push({ id: m.id, name: typeof m.name === 'string' ? m.name : m.id, defaultSteps: steps });
      }
    } catch {
      // A manifest that does not parse is skipped here; the engine reports it when it loads the model.
    }
  }
  return out.length ? out : FALLBACK;
}

export const ASPECTS = ['1:1', '4:3', '3:4', '3:2', '2:3', '16:9', '9:16'] as const;
