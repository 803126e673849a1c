import type {
  AutocompleteInteraction,
  ButtonInteraction,
  ChatInputCommandInteraction,
  RESTPostAPIChatInputApplicationCommandsJSONBody,
} from 'discord.js';
import type { Config } from '../config/config.ts';
import type { BotQueue } from '../queue/queue.ts';
import type { Generation } from '../store/schema.ts';
import type { Store } from '../store/store.ts';
import type { Verb } from './components.ts';
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
  /** The slash commands, by name (loaded from the root commands/ folder at start). */
  commands: ReadonlyMap<string, SlashCommand>;
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
  /** Suggestions for an option registered with autocomplete, as the user types (answered within 3 s). */
  autocomplete?(ix: AutocompleteInteraction, ctx: BotContext): Promise<void>;
}

/** One button action (files in src/bot/buttons/): the generation is resolved and checked before it runs. */
export interface ButtonAction {
  verb: Verb;
  /** Anyone may press it (it only looks); otherwise the image's author, a moderator, or ALLOW_OTHERS_TO_EDIT. */
  open?: boolean;
  /** It renders pictures (up to HISTORY_MAX images through sharp): counted by the per-user render limit. */
  renders?: boolean;
  execute(ix: ButtonInteraction, g: Generation, ctx: BotContext): Promise<void>;
}
