import { loadConfig, readEnvironment } from '../../config/config.ts';
import { parseCommandArgs, type CliCommand } from '../command.ts';

const usage = 'scenewright bot';

export const command: CliCommand = {
  summary:
    'run the Discord bot without a worker (paintings are done by `scenewright worker` processes: on the same DATA_DIR, or anywhere with REDIS_URL)',
  settings: [
    'DISCORD_TOKEN',
    'DISCORD_API_URL',
    'DATA_DIR',
    'REDIS_URL',
    'OPENAI_BASE_URL',
    'OPENAI_MODEL',
    'OPENAI_TIMEOUT_MS',
    'DEFAULT_SIZE',
    'MAX_STEPS',
    'USER_MAX_CONCURRENT_JOBS',
    'USER_COOLDOWN_SECONDS',
    'USER_RENDERS_PER_MINUTE',
    'ALLOWED_GUILD_IDS',
    'LOG_LEVEL',
  ],
  usage,
  async run(argv) {
    parseCommandArgs(argv, {}, usage);
    const config = loadConfig(readEnvironment(), ['discord']);
    const { runBot } = await import('../../bot/run.ts');
    await runBot(config, { embeddedWorker: false });
    return undefined;
  },
};
