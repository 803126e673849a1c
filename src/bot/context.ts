import type { ChatInputCommandInteraction, RESTPostAPIChatInputApplicationCommandsJSONBody } from 'discord.js';
import type { Config } from '../config/config.ts';
import type { BotQueue } from '../queue/queue.ts';
import type { Store } from '../store/store.ts';
import type { Delivery } from './delivery.ts';
import type { Flows, Prepared } from './flows.ts';
import type { ModelChoice } from './models.ts';
import type { BotPlanner } from './planning.ts';
import type { Posted } from './present.ts';

/** Everything a command or handler needs; one per running bot. */
export interface BotContext {
  config: Config;
  store: Store;
  queue: BotQueue;
  flows: Flows;
  delivery: Delivery;
  planner: BotPlanner;
  /** Whether gateway messages carry their text (the privileged MessageContent intent). */
  readsMessageContent: boolean;
  /** Links the bot's first message for a request to its generation, and shows the job there from now on. */
  attach(p: Prepared, posted: Posted): Promise<void>;
}

/** One slash command: its registration body and its handler (files in commands/). */
export interface SlashCommand {
  name: string;
  definition(config: Config, models: ModelChoice[]): RESTPostAPIChatInputApplicationCommandsJSONBody;
  execute(ix: ChatInputCommandInteraction, ctx: BotContext): Promise<void>;
}
