/**
 * `scenewright bot` and `scenewright start` are one program: the Discord bot, with or without a painter of its
 * own. Both read the same settings (start also the model's), so --help and start-up come from one place.
 */
import { loadConfig, readEnvironment } from '../config/config.ts';
import { parseCommandArgs, type CliCommand } from './command.ts';

const BOT_SETTINGS = [
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
  'LORA_DIR',
  'LOG_LEVEL',
];

/** What the embedded painter reads on top of the bot's settings. */
const PAINTER_SETTINGS = ['MODEL_DIR', 'EXECUTION_PROVIDER', 'ORT_THREADS', 'WEIGHTS'];

export function botCommand(o: { name: string; summary: string; embeddedWorker: boolean }): CliCommand {
  const usage = `scenewright ${o.name}`;
  return {
    summary: o.summary,
    settings: o.embeddedWorker ? [BOT_SETTINGS[0]!, ...PAINTER_SETTINGS, ...BOT_SETTINGS.slice(1)] : BOT_SETTINGS,
    usage,
    async run(argv) {
      parseCommandArgs(argv, {}, usage);
      const config = loadConfig(readEnvironment(), ['discord']);
      const { runBot } = await import('../bot/run.ts');
      await runBot(config, { embeddedWorker: o.embeddedWorker });
      return undefined;
    },
  };
}
