import { loadConfig, readEnvironment } from '../../config/config.ts';
import type { CliCommand } from '../command.ts';

export const command: CliCommand = {
  summary: 'run the Discord bot with an embedded worker, SQLite store and durable queue (what `npm start` runs)',
  settings: [
    'DISCORD_TOKEN',
    'MODEL_DIR',
    'EXECUTION_PROVIDER',
    'ORT_THREADS',
    'WEIGHTS',
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
  usage: 'scenewright start',
  async run() {
    const config = loadConfig(readEnvironment(), ['discord']);
    const { runBot } = await import('../../bot/run.ts');
    await runBot(config, { embeddedWorker: true });
    return undefined;
  },
};
