import { loadConfig, readEnvironment } from '../../config/config.ts';
import type { CliCommand } from '../command.ts';

export const command: CliCommand = {
  summary: 'run the Discord bot with an embedded worker, SQLite store and durable queue (what `npm start` runs)',
  usage: 'scenewright start',
  async run() {
    const config = loadConfig(readEnvironment(), ['discord']);
    const { runBot } = await import('../../bot/run.ts');
    await runBot(config, { embeddedWorker: true });
    return undefined;
  },
};
