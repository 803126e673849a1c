import type { SlashCommand } from '../src/bot/context.ts';
import { command as imagine } from './imagine.ts';
import { command as layout } from './layout.ts';
import { command as queue } from './queue.ts';
import { command as settings } from './settings.ts';

/** Every slash command the bot registers and answers. */
export const COMMANDS: readonly SlashCommand[] = [imagine, layout, queue, settings];
