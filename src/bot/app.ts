import { Client, Events, GatewayIntentBits } from 'discord.js';
import type { Config } from '../config/config.ts';
import { UserError } from '../config/errors.ts';
import { childLogger, registerSecret } from '../log/logger.ts';
import { openQueue, type OpenQueueOptions } from '../queue/index.ts';
import type { JobQueue } from '../queue/queue.ts';
import { openStore } from '../store/index.ts';
import type { Store } from '../store/store.ts';
import { createWorkerHost, type WorkerHost, type WorkerHostOptions } from '../worker/index.ts';
import { loadCommands } from './command-loader.ts';
import type { BotContext, SlashCommand } from './context.ts';
import { Delivery, type DeliveryOptions } from './delivery.ts';
import { Flows, type PaintingState } from './flows.ts';
import { followServedModels } from './models.ts';
import { onInteraction, RESTARTED_TEXT } from './interactions.ts';
import { onMessage } from './messages.ts';
import type { BotPlanner } from './planning.ts';
import { DiscordCode, discordCode } from './errors.ts';
import { NO_MENTIONS, NO_MENTIONS_API } from './text.ts';
import { Routes } from 'discord.js';
import { TOKEN_LIFETIME_MS } from './present.ts';

const log = childLogger('bot');

export interface StartOptions {
  /** Run the painter in a child process of this bot (what `start` does); otherwise `worker` processes paint. */
  embeddedWorker: boolean;
  /** A Painter module other than the engine's (tests). */
  painterModule?: string;
  workerOptions?: Partial<Omit<WorkerHostOptions, 'queue' | 'painterModule'>>;
  /** The planner; by default the configured one (LLM, or offline rules). */
  planner?: BotPlanner;
  /** Gateway intents; by default Guilds, GuildMessages and MessageContent. */
  intents?: GatewayIntentBits[];
  /** Throttle for progress edits (ms, default 2500). */
  progressEveryMs?: number;
  /** How often the queue's change feed looks at the database (ms). */
  queuePollMs?: number;
  /** Tuning of the BullMQ queue when REDIS_URL is set (tests shorten its timers). */
  redisOptions?: Omit<OpenQueueOptions, 'redisUrl' | 'pollMs'>;
  /** Delivery tuning (throttles). */
  deliveryOptions?: DeliveryOptions;
  /** How often the store's write-ahead log is moved into the database file (ms, default 5 minutes). */
  checkpointEveryMs?: number;
  /** The slash commands; by default every module in the root commands/ folder. */
  commands?: readonly SlashCommand[];
}

export interface BotHandle {
  client: Client;
  store: Store;
  queue: JobQueue;
  host?: WorkerHost;
  flows: Flows;
  delivery: Delivery;
  painting: PaintingState;
  /** Resolves when the painter has loaded (or failed to: painting.mode says which). */
  painterSettled: Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_INTENTS = [
  GatewayIntentBits.Guilds,
  GatewayIntentBits.GuildMessages,
  GatewayIntentBits.MessageContent,
];

/**
 * Interactions the previous process acknowledged but never answered would show "thinking…" until Discord
 * gives up. Their tokens still work for up to 15 minutes: replace the placeholder with an explanation.
 */
async function answerLeftovers(client: Client, applicationId: string, store: Store): Promise<void> {
  for (const p of store.takePending()) {
    if (Date.now() - p.createdAt > TOKEN_LIFETIME_MS - 30_000) continue;
    await client.rest
      .patch(Routes.webhookMessage(applicationId, p.token, '@original'), {
        body: { content: RESTARTED_TEXT, components: [], allowed_mentions: NO_MENTIONS_API },
        auth: false,
      })
      .then(() => log.info({ interaction: p.interactionId }, 'told a user their request was interrupted by a restart'))
      // Never acknowledged (no placeholder to replace) or already answered and gone: nothing to say.
      .catch((e: unknown) => log.debug({ err: e, interaction: p.interactionId }, 'no placeholder to replace'));
  }
}

/**
 * Mentions and reply-edits the previous process was answering when it died: each gets one reply saying so.
 * A row goes once its reply is posted, or once there is nothing left to reply to.
 */
async function answerLeftoverMessages(client: Client, store: Store): Promise<void> {
  for (const p of store.pendingMessages()) {
    const stale = Date.now() - p.createdAt > LEFTOVER_MESSAGE_MAX_AGE_MS;
    if (!stale) {
      try {
        await client.rest.post(Routes.channelMessages(p.channelId), {
          body: {
            content: RESTARTED_MESSAGE_TEXT,
            message_reference: { message_id: p.messageId, fail_if_not_exists: false },
            allowed_mentions: NO_MENTIONS_API,
          },
        });
        log.info({ message: p.messageId }, 'told a user their message was interrupted by a restart');
      } catch (e) {
        const code = discordCode(e);
        // The channel is gone or closed to the bot: nobody to tell. Anything else: try again next start.
        if (code !== DiscordCode.UnknownChannel && code !== DiscordCode.MissingAccess) {
          log.warn({ err: e, message: p.messageId }, 'could not answer a message left by a restart');
          continue;
        }
      }
    }
    store.removePendingMessage(p.messageId);
  }
}

/** Older than this, an unanswered message is left alone: the conversation has moved on. */
const LEFTOVER_MESSAGE_MAX_AGE_MS = 60 * 60_000;

export const RESTARTED_MESSAGE_TEXT =
  '⚠️ I was restarted while working on this, so it was not finished. Please send it again.';

const NETWORK_CODES = /^(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|UND_ERR_\w+)$/;

/** A network failure: the error or one of its causes carries a socket-level code. */
function networkCode(e: unknown): string | undefined {
  for (let c = e as { code?: unknown; cause?: unknown } | undefined, i = 0; c && i < 5; c = c.cause as typeof c, i++)
    if (typeof c.code === 'string' && NETWORK_CODES.test(c.code)) return c.code;
  return undefined;
}

/** Why logging in failed, in words that point at the right fix: the network, the API URL, or the token. */
export function loginFailure(e: unknown, config: Config): UserError {
  const why = (e as Error)?.message ?? String(e);
  const custom = config.discord.apiUrl !== 'https://discord.com/api';
  const code = networkCode(e);
  if (code)
    return new UserError(
      `could not reach Discord at ${config.discord.apiUrl} (${code}): check this machine's network connection, DNS and any proxy or firewall${custom ? ', and DISCORD_API_URL' : ''}; DISCORD_TOKEN was not even tried`,
    );
  return new UserError(
    `Discord refused to log in (${why}): check DISCORD_TOKEN${custom ? ` and DISCORD_API_URL (${config.discord.apiUrl})` : ''}`,
  );
}

function checkpoint(store: Store): void {
  try {
    const r = store.checkpoint();
    log.debug(r, 'store checkpoint');
  } catch (e) {
    log.warn({ err: e }, 'could not checkpoint the store (the next try catches up)');
  }
}

async function defaultPlanner(config: Config): Promise<BotPlanner> {
  const { createBotPlanner } = await import('./planner-adapter.ts');
  return createBotPlanner(config);
}

/**
 * Starts the bot: the SQLite store and queue in DATA_DIR, the planner, the painter (in a child process
 * when `embeddedWorker`), the discord.js client and the delivery of results. Resolves once the client is
 * ready; the painter may still be loading (requests are queued meanwhile).
 */
export async function startBot(config: Config, options: StartOptions): Promise<BotHandle> {
  const token = config.discord.token;
  if (!token) throw new UserError('DISCORD_TOKEN is not set');
  registerSecret(token);
  registerSecret(config.llm.apiKey);

  const store = openStore(config.dataDir);
  const cleanup: (() => Promise<void> | void)[] = [
    () => {
      checkpoint(store);
      store.db.close();
    },
  ];
  const unknown = store.unknownArtifactFolders();
  if (unknown.length)
    log.warn(
      { artifactsDir: store.artifactsDir, count: unknown.length, first: unknown.slice(0, 5) },
      `${store.artifactsDir} holds ${unknown.length} folder(s) the database does not know (left by a deleted or replaced database?); they are never shown or deleted: remove them yourself if they are not needed`,
    );
  const checkpointTimer = setInterval(() => checkpoint(store), options.checkpointEveryMs ?? 5 * 60_000);
  checkpointTimer.unref();
  cleanup.unshift(() => clearInterval(checkpointTimer));
  let queue: JobQueue;
  try {
    queue = await openQueue(store.db, {
      redisUrl: config.redisUrl,
      pollMs: options.queuePollMs,
      dataDir: config.dataDir,
      blobTtlSeconds: config.queue.blobTtlSeconds,
      ...options.redisOptions,
    });
  } catch (e) {
    clearInterval(checkpointTimer);
    store.db.close();
    throw e;
  }
  cleanup.unshift(() => queue.close());
  try {
    const planner = options.planner ?? (await defaultPlanner(config));
    const commands = options.commands ?? (await loadCommands());
    const painting: PaintingState = { mode: 'none' };
    let host: WorkerHost | undefined;
    if (config.model.dir) {
      if (options.embeddedWorker) {
        host = createWorkerHost(config, queue, {
          leaseMs: config.queue.leaseMs,
          ...(queue.workDir ? { dataDir: queue.workDir } : {}),
          ...options.workerOptions,
          ...(options.painterModule ? { painterModule: options.painterModule } : {}),
        });
        painting.mode = 'loading';
      } else {
        painting.mode = 'external';
      }
    } else if (config.redisUrl) {
      // README "Several GPU machines": MODEL_DIR only where the workers run; they say which models they paint.
      painting.mode = 'external';
    }
    if (painting.mode === 'external' && config.redisUrl) {
      const served = followServedModels(queue, painting);
      cleanup.unshift(() => served.stop());
      await served.first;
    }
    // Jobs whose worker died with the previous bot process go back to the queue (once) or fail now.
    await queue.recoverStalled();

    const intents = options.intents ?? DEFAULT_INTENTS;
    const client = new Client({ intents, rest: { api: config.discord.apiUrl }, allowedMentions: NO_MENTIONS });
    cleanup.unshift(() => client.destroy());
    const flows = new Flows(config, store, queue, planner, painting);
    // Hash the styles once now, so that the first request for each does not wait for it.
    if (config.model.loraDir)
      void flows.hashStyles().then(
        ({ styles, skipped }) => {
          log.info({ styles, dir: config.model.loraDir }, 'styles hashed');
          if (skipped.length) log.warn({ skipped }, 'files in LORA_DIR that are not usable styles (left out)');
        },
        (err: unknown) => log.warn({ err }, 'could not list the styles in LORA_DIR'),
      );
    // Delivery needs the ready client's application id; handlers that run before that never reach it.
    const late: { delivery?: Delivery } = {};
    const ctx: BotContext = {
      config,
      store,
      queue,
      flows,
      planner,
      commands: new Map(commands.map((c) => [c.name, c] as const)),
      get delivery() {
        return late.delivery!;
      },
      readsMessageContent: intents.includes(GatewayIntentBits.MessageContent),
      async attach(p, posted) {
        store.linkMessage(posted.id, posted.channelId, p.generation.id, p.job ? 'status' : 'layout');
        if (!p.job) return;
        // Only reachable in the instant between "ready" and the delivery starting; the job still runs and is
        // delivered from the queue's backlog, so a later start shows it.
        if (late.delivery) await late.delivery.attach(p.job, posted);
        else
          await queue.setTarget(p.job.id, {
            messageId: posted.id,
            ...(posted.viaInteraction ? {} : { viaInteraction: false }),
          });
      },
    };
    client.on(Events.InteractionCreate, (ix) => void onInteraction(ix, ctx));
    client.on(Events.MessageCreate, (m) => void onMessage(m, ctx));
    client.on(Events.Error, (e) => log.error({ err: e }, 'discord client error'));
    client.rest.on('rateLimited', (info) =>
      log.warn({ route: info.route, retryAfter: info.retryAfter }, 'rate limited by Discord'),
    );

    const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
    try {
      await client.login(token);
    } catch (e) {
      const why = (e as Error).message;
      if (/disallowed intents/i.test(why)) {
        throw new UserError(
          'Discord refused the Message Content intent: enable it in the developer portal (your app → Bot → Privileged Gateway Intents → Message Content Intent), then start again',
        );
      }
      throw loginFailure(e, config);
    }
    await ready;
    const applicationId = client.application?.id ?? config.discord.applicationId;
    if (!applicationId)
      throw new UserError('Discord did not say which application this bot is: set DISCORD_APPLICATION_ID');
    await answerLeftovers(client, applicationId, store);
    await answerLeftoverMessages(client, store);
    const delivery = new Delivery(client.rest, applicationId, config, store, queue, () => flows.canPaint, {
      progressEveryMs: options.progressEveryMs,
      ...options.deliveryOptions,
      waitingNote: () =>
        painting.mode === 'loading'
          ? 'the painter is warming up (loading the model); your picture starts when it is ready'
          : undefined,
    });
    late.delivery = delivery;
    await delivery.start();
    cleanup.unshift(() => delivery.stop());
    log.info({ user: client.user?.tag, guilds: client.guilds.cache.size, painting: painting.mode }, 'bot ready');

    if (host)
      log.info(
        { modelDir: config.model.dir },
        'the painter is warming up (loading the model can take minutes); jobs wait in the queue until it is ready',
      );
    const painterSettled = host
      ? host.start().then(
          (info) => {
            painting.mode = 'ready';
            painting.info = info;
            log.info({ model: info }, 'painter ready');
          },
          async (e: unknown) => {
            painting.mode = 'failed';
            painting.reason = (e as Error).message;
            log.error({ err: e }, 'the painter could not load; the bot will plan and show layouts only');
            // Nothing will ever run what is waiting: tell those users now instead of leaving them queued.
            await queue.failWaiting(`the image model failed to load (${painting.reason})`);
          },
        )
      : Promise.resolve();
    if (host) cleanup.unshift(() => host.stop());

    let stopped = false;
    return {
      client,
      store,
      queue,
      host,
      flows,
      delivery,
      painting,
      painterSettled,
      async stop() {
        if (stopped) return;
        stopped = true;
        for (const step of cleanup) {
          try {
            await step();
          } catch (e) {
            log.warn({ err: e }, 'error while stopping');
          }
        }
      },
    };
  } catch (e) {
    for (const step of cleanup) await Promise.resolve(step()).catch(() => undefined);
    throw e;
  }
}
