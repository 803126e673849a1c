import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { childLogger } from '../log/logger.ts';
import type { BotQueue } from '../queue/queue.ts';

const log = childLogger('models');

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

/**
 * The model to paint with when the user names none and this bot loads none itself: one that live workers
 * serve (schnell first), so a cluster of dev workers is not sent schnell jobs nobody takes.
 */
export function servedDefault(choices: ModelChoice[], served: readonly string[] | undefined): ModelChoice | undefined {
  const ok = choices.filter((c) => served?.includes(c.id));
  return ok.find((c) => c.id === 'flux.1-schnell') ?? ok[0];
}

/**
 * With REDIS_URL, workers on other machines paint and the bot needs no MODEL_DIR: it learns the models they
 * paint from their announcements (the queue's live workers, per model), looked at every `everyMs`. `into.served`
 * keeps the last answer when a look fails (Redis away for a moment).
 */
export function followServedModels(
  queue: Pick<BotQueue, 'stats'>,
  into: { served?: string[] },
  everyMs = 2000,
): { first: Promise<void>; stop(): void } {
  let busy = false;
  const look = async () => {
    if (busy) return;
    busy = true;
    try {
      const stats = await queue.stats();
      const served = (stats.models ?? [])
        .filter((m) => m.workers > 0)
        .map((m) => m.model)
        .sort();
      if (served.join() !== into.served?.join())
        log.info({ models: served }, served.length ? 'workers paint these models' : 'no worker is alive');
      into.served = served;
    } catch (e) {
      log.debug({ err: e }, 'could not look at the workers (will look again)');
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void look(), everyMs);
  timer.unref();
  return { first: look(), stop: () => clearInterval(timer) };
}
