import type { Config } from '../config/config.ts';
import { UserError } from '../config/errors.ts';

export interface RunOptions {
  embeddedWorker: boolean;
}

// Replaced by the discord.js bot (issue 6); until then `start` validates configuration and stops here.
export async function runBot(_config: Config, _options: RunOptions): Promise<void> {
  throw new UserError('the Discord bot is not part of this build yet', 1);
}
