// End-to-end harness: the fake Discord, the real bot (real discord.js client, real SQLite in a temporary
// DATA_DIR, the configured planner — offline rules here — and a painter in a child process), and helpers that
// play the users. Painters:
//   none   — MODEL_DIR unset: the bot plans and shows layouts only
//   engine — the engine's painter (src/engine/painter.ts) on the tiny FLUX checkpoint, or on `modelDir`
//            (e.g. a deliberately broken copy of it). The image size is DEFAULT_SIZE (512 here): step time
//            grows with it, which is how tests make a job long enough to interrupt.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { GatewayIntentBits } from 'discord.js';
import { loadConfig, type Config } from '../../src/config/config.ts';
import { startBot, type BotHandle, type StartOptions } from '../../src/bot/app.ts';
import { deployCommands } from '../../commands/deploy.ts';
import { fixture } from '../support/fixtures.ts';
import {
  FakeDiscord,
  Permission,
  type ApiChannel,
  type ApiMessage,
  type ApiUser,
  type FakeDiscordOptions,
  type FakeInteraction,
} from '../support/fake-discord/index.ts';

export const TINY_MODEL = fixture('tiny-flux-schnell');
/** The engine's painter exists (its pipeline entry has landed) and the tiny checkpoint is there. */

export type PainterKind = 'none' | 'engine';

export interface HarnessOptions {
  painter?: PainterKind;
  /** Extra configuration (environment names), e.g. { PROMPT_DENY_LIST: 'lava' }. */
  env?: Record<string, string>;
  /** The engine painter's checkpoint folder (default: the tiny schnell fixture). */
  modelDir?: string;
  /** The engine painter's `extra` options (previewEvery, memoryCheck). */
  painterExtra?: Record<string, unknown>;
  intents?: GatewayIntentBits[];
  progressEveryMs?: number;
  fake?: FakeDiscordOptions;
  workerOptions?: StartOptions['workerOptions'];
  planner?: StartOptions['planner'];
  /** false: the bot runs without a worker (as `scenewright bot`); paintings need a separate WorkerHost. */
  embeddedWorker?: boolean;
  /** BullMQ tuning when env.REDIS_URL is set (shorter timers than production). */
  redisOptions?: StartOptions['redisOptions'];
  deliveryOptions?: StartOptions['deliveryOptions'];
  /** Another Painter module (e.g. one that holds the engine back to play a slow model load). */
  painterModule?: string;
  /** false: start returns while the painter is still loading. */
  awaitPainter?: boolean;
}

export class Harness {
  bot!: BotHandle;
  config!: Config;
  readonly users: { alice: ApiUser; bob: ApiUser; mod: ApiUser };
  readonly channel: ApiChannel;
  readonly nsfwChannel: ApiChannel;

  private constructor(
    readonly fake: FakeDiscord,
    readonly guildId: string,
    readonly dataDir: string,
    private readonly o: HarnessOptions,
  ) {
    this.channel = fake.addChannel(guildId, 'art');
    this.nsfwChannel = fake.addChannel(guildId, 'after-dark', { nsfw: true });
    const modRole = fake.addRole(guildId, 'moderator', Permission.ManageMessages);
    this.users = {
      alice: fake.join(guildId, 'alice'),
      bob: fake.join(guildId, 'bob'),
      mod: fake.join(guildId, 'mod', [modRole]),
    };
  }

  static async start(o: HarnessOptions = {}): Promise<Harness> {
    const fake = await FakeDiscord.start(o.fake);
    const { id: guildId } = fake.addGuild('scenewright test');
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sw-bot-'));
    const h = new Harness(fake, guildId, dataDir, o);
    const painter = o.painter ?? 'none';
    const env: Record<string, string> = {
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.restUrl,
      DISCORD_DEV_GUILD_ID: guildId,
      DATA_DIR: dataDir,
      USER_COOLDOWN_SECONDS: '0',
      MIN_SIZE: '256',
      DEFAULT_SIZE: '512',
      ...(painter === 'engine' ? { MODEL_DIR: o.modelDir ?? TINY_MODEL } : {}),
      ...o.env,
    };
    h.config = loadConfig(env, ['discord', 'discord-app']);
    await deployCommands(h.config);
    await h.startBot();
    return h;
  }

  async startBot(): Promise<BotHandle> {
    const { model } = this.config;
    this.bot = await startBot(this.config, {
      embeddedWorker: this.o.embeddedWorker ?? true,
      workerOptions: {
        leaseMs: 3000,
        pollMs: 30,
        progressEveryMs: 50,
        respawnMs: 50,
        ...(model.dir && this.o.painterExtra
          ? {
              painterOptions: {
                modelDir: model.dir,
                executionProvider: model.executionProvider,
                threads: model.threads,
                extra: this.o.painterExtra,
              },
            }
          : {}),
        ...this.o.workerOptions,
      },
      intents: this.o.intents,
      planner: this.o.planner,
      ...(this.o.painterModule ? { painterModule: this.o.painterModule } : {}),
      progressEveryMs: this.o.progressEveryMs ?? 200,
      queuePollMs: 30,
      redisOptions: { reconcileMs: 200, heartbeatMs: 300, ...this.o.redisOptions },
      deliveryOptions: this.o.deliveryOptions,
    });
    if (this.o.awaitPainter !== false) await this.bot.painterSettled;
    await this.fake.waitFor(() => this.fake.connected, 'bot connected');
    return this.bot;
  }

  /** Stops the bot process (as a crash or restart would) and starts a new one on the same DATA_DIR. */
  async restartBot(): Promise<BotHandle> {
    await this.bot.stop();
    this.fake.disconnectAll();
    return this.startBot();
  }

  async close(): Promise<void> {
    await this.bot?.stop();
    await this.fake.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Runs /imagine and waits until the bot's answer shows a layout (or an error). */
  async imagine(
    user: ApiUser,
    prompt: string,
    options: Record<string, string | number> = {},
    channel = this.channel,
  ): Promise<{ ix: FakeInteraction; message: ApiMessage }> {
    const ix = this.fake.slashCommand(user, channel.id, 'imagine', { prompt, ...options });
    const message = await this.answered(ix);
    return { ix, message };
  }

  /**
   * The bot links a message to its generation right after Discord returns it; a user cannot reply faster
   * than that, a test can. Wait for the link of any message that carries generation buttons.
   */
  private async linked(m: ApiMessage): Promise<ApiMessage> {
    if (m.flags & 64 || !this.buttons(m).some((b) => b.includes(':'))) return m;
    await this.fake.waitFor(() => this.bot.store.messageLink(m.id), `message ${m.id} to be linked`);
    return m;
  }

  /** Waits for the bot's first real answer to an interaction (not the "thinking…" placeholder). */
  async answered(ix: FakeInteraction, timeoutMs = 15_000): Promise<ApiMessage> {
    return this.linked(
      await this.fake.waitFor(
        () => {
          const eph = ix.ephemeral.at(-1);
          if (eph && eph.content) return eph;
          const m = ix.originalMessageId ? this.fake.messages.get(ix.originalMessageId) : undefined;
          return m && (m.content || m.attachments.length) ? m : undefined;
        },
        `an answer to interaction ${ix.id}`,
        timeoutMs,
      ),
    );
  }

  /** Waits until the message with this id shows a finished image (or an error/cancel). */
  async finished(messageId: string, timeoutMs = 30_000): Promise<ApiMessage> {
    return this.fake.waitFor(
      () => {
        const m = this.fake.messages.get(messageId);
        return m && /^(✅|⚠️|🚫)/.test(m.content) ? m : undefined;
      },
      `message ${messageId} to finish`,
      timeoutMs,
    );
  }

  /** The bot's reply to a user's message. */
  async replyTo(messageId: string, timeoutMs = 15_000): Promise<ApiMessage> {
    return this.linked(
      await this.fake.waitFor(
        () => this.fake.repliesTo(messageId).find((m) => m.author.id === this.fake.bot.id),
        `a reply to ${messageId}`,
        timeoutMs,
      ),
    );
  }

  buttons(m: ApiMessage): string[] {
    return (m.components as { components: { custom_id?: string }[] }[]).flatMap((r) =>
      r.components.map((c) => c.custom_id ?? ''),
    );
  }
}
