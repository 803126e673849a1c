import { loadConfig, readEnvironment } from '../../config/config.ts';
import { parseCommandArgs, type CliCommand } from '../command.ts';

const usage = 'scenewright bot';

export const command: CliCommand = {
  summary:
    'run the Discord bot without a worker (paintings are done by `scenewright worker` processes: on the same DATA_DIR, or anywhere with REDIS_URL)',
  usage,
  async run(argv) {
    parseCommandArgs(argv, {}, usage);
    const config = loadConfig(readEnvironment(), ['discord']);
    const { runBot } = await import('../../bot/run.ts');
    await runBot(config, { embeddedWorker: false });
    return undefined;
  },
};
