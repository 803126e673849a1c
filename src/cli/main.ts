import { configDefaults } from '../config/config.ts';
import { ConfigError, UserError } from '../config/errors.ts';
import { SceneError } from '../scene/validate.ts';
import { log } from '../log/logger.ts';
import type { CliCommand } from './command.ts';

// Loaded lazily so that `plan` never pays for ONNX Runtime and `--help` answers at once.
const COMMANDS: Record<string, () => Promise<{ command: CliCommand }>> = {
  start: () => import('./subcommands/start.ts'),
  plan: () => import('./subcommands/plan.ts'),
  edit: () => import('./subcommands/edit.ts'),
  layout: () => import('./subcommands/layout.ts'),
  bot: () => import('./subcommands/bot.ts'),
  worker: () => import('./subcommands/worker.ts'),
  debug: () => import('./subcommands/debug.ts'),
  'make-tiny-model': () => import('./subcommands/make-tiny-model.ts'),
  generate: () => import('./subcommands/generate.ts'),
  repaint: () => import('./subcommands/repaint.ts'),
};

function help(): string {
  const lines = [
    'scenewright: regional FLUX images from conversation (RAG on ONNX Runtime)',
    '',
    'usage: scenewright <command> [options]',
    '',
    'commands:',
  ];
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const out = [help()];
    for (const [n, load] of Object.entries(COMMANDS)) out.push(`  ${n.padEnd(16)} ${(await load()).command.summary}`);
    out.push('', 'settings (environment or .env; defaults shown):');
    const defaults = Object.entries(configDefaults()).map(([k, v]) => `${k}=${v}`);
    for (let i = 0; i < defaults.length; i += 4) out.push(`  ${defaults.slice(i, i + 4).join('  ')}`);
    out.push('', 'Run `scenewright <command> --help` for its options. Every setting is explained in .env.example.');
    process.stdout.write(out.join('\n') + '\n');
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`unknown command "${name}". Commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    const out = [command.summary, '', `usage: ${command.usage}`];
    if (command.defaults?.length) out.push('', 'defaults:', ...command.defaults.map((d) => `  ${d}`));
    if (command.settings?.length) {
      const all = configDefaults();
      out.push('', 'settings it reads (environment or .env; default in brackets):');
      for (const name of command.settings) out.push(`  ${name}${all[name] !== undefined ? ` [${all[name]}]` : ''}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  }
  return (await command.run(rest)) ?? 0;
}

const INPUT_ERRORS = new Set(['RagParamsError', 'MaskError', 'LlmError', 'StoreError']);

function report(e: unknown): number {
  if (e instanceof ConfigError) {
    process.stderr.write(`${e.message}\n\nEdit .env (see .env.example for every setting) and run again.\n`);
    return 2;
  }
  if (e instanceof UserError) {
    process.stderr.write(`error: ${e.message}\n`);
    return e.exitCode;
  }
  // Errors about the user's input (parameters, masks, LLM answers): the message is the whole story.
  if (e instanceof SceneError || e instanceof SyntaxError || (e instanceof Error && INPUT_ERRORS.has(e.name))) {
    process.stderr.write(`error: ${e.message}\n`);
    return 1;
  }
  const err = e as Error;
  log.debug({ err }, 'unexpected failure');
  process.stderr.write(`error: ${err?.message ?? String(e)}\n(run with LOG_LEVEL=debug for the details)\n`);
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = report(e);
  },
);
