import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { SlashCommand } from './context.ts';

/** The root `commands/` folder: one module per slash command, each exporting `command`. */
export const COMMANDS_DIR = fileURLToPath(new URL('../../commands/', import.meta.url));

/** Files in commands/ that are not slash commands (the registration script). */
const NOT_COMMANDS = new Set(['deploy']);

function isSlashCommand(x: unknown): x is SlashCommand {
  const c = x as Partial<SlashCommand> | undefined;
  return typeof c?.name === 'string' && typeof c.definition === 'function' && typeof c.execute === 'function';
}

/**
 * Loads every slash command from `dir` at start, as discord.js's guide does, so that nothing under src/ imports
 * the commands (they import the bot). Sorted by file name, so registration order is stable.
 */
export async function loadCommands(dir = COMMANDS_DIR): Promise<SlashCommand[]> {
  const files = readdirSync(dir)
    .filter((f) => /\.(ts|js|mjs)$/.test(f) && !f.endsWith('.d.ts'))
    .filter((f) => !NOT_COMMANDS.has(f.replace(/\.[^.]+$/, '')))
    .sort();
  const out: SlashCommand[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as { command?: unknown };
    if (!isSlashCommand(mod.command))
      throw new Error(
        `${path.join(dir, f)} does not export a slash command as \`command\` (name, definition, execute)`,
      );
    out.push(mod.command);
  }
  const names = out.map((c) => c.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new Error(`two files in ${dir} define /${twice}`);
  return out;
}
