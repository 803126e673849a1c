// `npm run deploy-commands`: registers the slash commands with Discord. With DISCORD_DEV_GUILD_ID set they
// go to that guild only (instant, for development); otherwise globally (may take a while to show up).
import { pathToFileURL } from 'node:url';
import { REST, Routes } from 'discord.js';
import { loadConfig, readEnvironment, type Config } from '../src/config/config.ts';
import { ConfigError, UserError } from '../src/config/errors.ts';
import { modelChoices } from '../src/bot/models.ts';
import { loadCommands } from '../src/bot/command-loader.ts';

export interface Deployed {
  scope: 'guild' | 'global';
  guildId?: string;
  names: string[];
}

/** The registration bodies for this configuration (limits such as MAX_STEPS are part of the options). */
export async function commandBodies(config: Config) {
  const models = modelChoices();
  return (await loadCommands()).map((c) => c.definition(config, models));
}

export async function deployCommands(config: Config, rest?: REST): Promise<Deployed> {
  const { token, applicationId, devGuildId, apiUrl } = config.discord;
  if (!token || !applicationId)
    throw new UserError('DISCORD_TOKEN and DISCORD_APPLICATION_ID must be set to register commands');
  const client = rest ?? new REST({ api: apiUrl }).setToken(token);
  const body = await commandBodies(config);
  // PUT replaces the whole list for the scope, so commands removed from the code disappear from Discord too.
  if (devGuildId) {
    await client.put(Routes.applicationGuildCommands(applicationId, devGuildId), { body });
    return { scope: 'guild', guildId: devGuildId, names: body.map((b) => b.name) };
  }
  await client.put(Routes.applicationCommands(applicationId), { body });
  return { scope: 'global', names: body.map((b) => b.name) };
}

async function main(): Promise<number> {
  try {
    const config = loadConfig(readEnvironment(), ['discord', 'discord-app']);
    const done = await deployCommands(config);
    const where =
      done.scope === 'guild'
        ? `guild ${done.guildId} (available now)`
        : 'all guilds (global commands can take up to an hour to appear)';
    process.stdout.write(`registered /${done.names.join(', /')} in ${where}\n`);
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) process.stderr.write(`${e.message}\n\nEdit .env (see .env.example) and run again.\n`);
    else process.stderr.write(`error: could not register the commands: ${(e as Error).message}\n`);
    return e instanceof ConfigError ? 2 : 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
