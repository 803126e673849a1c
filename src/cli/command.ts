import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../config/errors.ts';

/** One CLI command: a module under src/cli/subcommands exporting `command`. */
export interface CliCommand {
  summary: string;
  usage: string;
  /** Option defaults, `--steps: the model's (4 for schnell, 20 for dev)`, one per line, shown by --help. */
  defaults?: string[];
  /** The settings (environment names) this command reads; --help shows their current defaults. */
  settings?: string[];
  run(argv: string[]): Promise<number | void>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with errors a user can read instead of a TypeError stack. */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\nusage: ${usage}`, 2);
  }
}

export { intOption } from '../config/int-option.ts';
