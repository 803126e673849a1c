import type { Config } from '../config/config.ts';
import { childLogger } from '../log/logger.ts';

export interface RunOptions {
  embeddedWorker: boolean;
}

/** Runs the bot until SIGINT or SIGTERM (`start` with an embedded worker, `bot` without). */
export async function runBot(config: Config, options: RunOptions): Promise<void> {
  const { startBot } = await import('./app.ts');
  const log = childLogger('bot');
  const bot = await startBot(config, { embeddedWorker: options.embeddedWorker });
  if (bot.painting.mode === 'none') {
    log.warn('MODEL_DIR is not set: the bot plans and shows layouts only, and tells users so');
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  log.info('stopping: a running job goes back to the queue and is painted after the next start');
  await bot.stop();
}
