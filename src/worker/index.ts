import type { Config } from '../config/config.ts';
import { UserError } from '../config/errors.ts';
import type { WorkerQueue } from '../queue/queue.ts';
import { WorkerHost, type WorkerHostOptions } from './host.ts';
import { ENGINE_PAINTER_MODULE, enginePainterAvailable } from './painter.ts';

export * from './painter.ts';
export { WorkerHost, PainterLoadError, type WorkerHostOptions } from './host.ts';

/**
 * A worker host for the configured model: the engine's painter on MODEL_DIR. Undefined when no model is
 * configured (the bot then plans and shows layouts only). `painterModule` swaps the engine for another
 * Painter implementation (tests).
 */
export function createWorkerHost(
  config: Config,
  queue: WorkerQueue,
  overrides: Partial<Omit<WorkerHostOptions, 'queue'>> = {},
): WorkerHost | undefined {
  const modelDir = config.model.dir;
  if (!modelDir) return undefined;
  const painterModule = overrides.painterModule ?? ENGINE_PAINTER_MODULE;
  if (!overrides.painterModule && !enginePainterAvailable()) {
    throw new UserError(
      `MODEL_DIR is set, but this build has no image engine yet (${ENGINE_PAINTER_MODULE} is missing): unset MODEL_DIR to run in layout-only mode`,
    );
  }
  return new WorkerHost({
    queue,
    dataDir: config.dataDir,
    painterModule,
    painterOptions: {
      modelDir,
      executionProvider: config.model.executionProvider,
      threads: config.model.threads,
      extra: {
        memoryCheck: config.model.memoryCheck,
        weights: config.model.weights,
        weightsCacheDir: config.model.weightsCacheDir,
      },
    },
    ...(config.model.loraDir ? { loraDir: config.model.loraDir } : {}),
    ...overrides,
  });
}
