// A fake Discord on loopback: REST (the routes a slash-command image bot uses) and a gateway, good enough to
// drive the real discord.js client with `rest: { api: fake.restUrl }`. It keeps guilds, channels, members
// and messages, plays the users' side (slash commands, buttons, modals, replies) and records every request
// so tests can assert on what the bot actually sent. BOT-NOTES.md 3.9 lists the details it must get right.
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  ALL_PERMISSIONS,
  DEFAULT_MEMBER_PERMISSIONS,
  Intent,
  member as makeMember,
  message as makeMessage,
  role as makeRole,
  snowflake,
  textChannel,
  user as makeUser,
  type ApiAttachment,
  type ApiChannel,
  type ApiMember,
  type ApiMessage,
  type ApiRole,
  type ApiUser,
} from './model.ts';

export interface RecordedFile {
  field: string;
  filename: string;
  contentType: string;
  data: Buffer;
}

export interface RecordedRequest {
  at: number;
  method: string;
  path: string;
  query: URLSearchParams;
  /** JSON body, or payload_json of a multipart body. */
  body: unknown;
  files: RecordedFile[];
  status: number;
  response: unknown;
}

interface Guild {
  id: string;
  name: string;
  ownerId: string;
  roles: ApiRole[];
  channels: ApiChannel[];
  members: Map<string, ApiMember>;
}

export interface FakeInteraction {
  id: string;
  token: string;
  type: number;
  createdAt: number;
  user: ApiUser;
  channelId: string;
  guildId: string;
  payload: Record<string, unknown>;
  /** When the first callback arrived (ms after creation), and which type it was. */
  ackMs?: number;
  ackType?: number;
  /** The message that `@original` refers to. */
  originalMessageId?: string;
  /** A modal the bot opened in answer. */
  modal?: { custom_id: string; title: string; components: unknown[] };
  /** The suggestions the bot answered an autocomplete interaction with. */
  choices?: { name: string; value: unknown }[];
  ephemeral: ApiMessage[];
  followUps: string[];
}

interface Registered {
  id: string;
  name: string;
  options?: {
    name: string;
    type: number;
    required?: boolean;
    choices?: { value: unknown }[];
    autocomplete?: boolean;
    min_value?: number;
    max_value?: number;
  }[];
}

export interface FakeDiscordOptions {
  token?: string;
  applicationId?: string;
  /** How long an interaction may wait for its first response (Discord: 3 s). */
  ackDeadlineMs?: number;
  /** Lifetime of an interaction token (Discord: 15 min). */
  tokenTtlMs?: number;
  /** Sent to the bot in every interaction as attachment_size_limit. */
  attachmentSizeLimit?: number;
  /**
   * Discord's per-channel message write limit (posts and edits, bot token or interaction webhook alike):
   * beyond `writes` per `windowMs` a write is answered 429 with retry_after and the X-RateLimit-* headers.
   * Off unless given.
   */
  rateLimit?: { writes: number; windowMs: number };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

const EPHEMERAL = 64;
const LOADING = 128;

export class FakeDiscord extends EventEmitter {
  readonly token: string;
  readonly applicationId: string;
  readonly bot: ApiUser;
  readonly requests: RecordedRequest[] = [];
  readonly messages = new Map<string, ApiMessage>();
  readonly interactions = new Map<string, FakeInteraction>();
  readonly commands = new Map<string, Registered[]>();
  readonly users = new Map<string, ApiUser>();
  readonly guilds = new Map<string, Guild>();
  readonly identifies: { intents: number; at: number }[] = [];
  readonly attachmentsData = new Map<string, Buffer>();
  private readonly sockets = new Set<{ ws: WebSocket; seq: number; intents: number; ready: boolean }>();
  private readonly expiredTokens = new Set<string>();
  private server!: Server;
  private wss!: WebSocketServer;
  private port = 0;
  private readonly o: Required<Omit<FakeDiscordOptions, 'token' | 'applicationId' | 'rateLimit'>> &
    Pick<FakeDiscordOptions, 'rateLimit'>;
  /** Accepted writes per channel (times), for the rate limit. */
  private readonly channelWrites = new Map<string, number[]>();

  private constructor(options: FakeDiscordOptions) {
    super();
    this.token = options.token ?? `fake.${randomBytes(12).toString('hex')}`;
    this.applicationId = options.applicationId ?? snowflake();
    this.bot = makeUser(this.applicationId, 'scenewright', true);
    this.users.set(this.bot.id, this.bot);
    this.o = { ackDeadlineMs: 3000, tokenTtlMs: 15 * 60_000, attachmentSizeLimit: 8 * 1024 * 1024, ...options };
  }

  static async start(options: FakeDiscordOptions = {}): Promise<FakeDiscord> {
    const fake = new FakeDiscord(options);
    fake.server = createServer((req, res) => void fake.handle(req, res));
    fake.wss = new WebSocketServer({ noServer: true });
    fake.server.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/gateway')) return socket.destroy();
      fake.wss.handleUpgrade(req, socket, head, (ws) => fake.onGateway(ws));
    });
    await new Promise<void>((r) => fake.server.listen(0, '127.0.0.1', r));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  /** For discord.js: `new Client({ rest: { api: fake.restUrl } })`. */
  get restUrl(): string {
    return `http://127.0.0.1:${this.port}/api`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---------------------------------------------------------------- world building

  addUser(username: string): ApiUser {
    const u = makeUser(snowflake(), username);
    this.users.set(u.id, u);
    return u;
  }

  addGuild(name = 'test guild', ownerName = 'owner'): { id: string; owner: ApiUser } {
    const owner = this.addUser(ownerName);
    const id = snowflake();
    const g: Guild = {
      id,
      name,
      ownerId: owner.id,
      roles: [makeRole(id, '@everyone', DEFAULT_MEMBER_PERMISSIONS, 0)],
      channels: [],
      members: new Map(),
    };
    g.members.set(owner.id, makeMember(owner, []));
    g.members.set(this.bot.id, makeMember(this.bot, []));
    this.guilds.set(id, g);
    return { id, owner };
  }

  addRole(guildId: string, name: string, permissions: bigint): string {
    const g = this.guild(guildId);
    const id = snowflake();
    g.roles.push(makeRole(id, name, permissions, g.roles.length));
    return id;
  }

  addChannel(guildId: string, name: string, { nsfw = false } = {}): ApiChannel {
    const g = this.guild(guildId);
    const c = textChannel(snowflake(), guildId, name, nsfw);
    g.channels.push(c);
    return c;
  }

  /** Adds a user to a guild (creating the user if a name is given). */
  join(guildId: string, who: ApiUser | string, roles: string[] = []): ApiUser {
    const u = typeof who === 'string' ? this.addUser(who) : who;
    this.guild(guildId).members.set(u.id, makeMember(u, roles));
    return u;
  }

  private guild(id: string): Guild {
    const g = this.guilds.get(id);
    if (!g) throw new Error(`no guild ${id}`);
    return g;
  }

  private channel(id: string): { guild: Guild; channel: ApiChannel } | undefined {
    for (const guild of this.guilds.values()) {
      const channel = guild.channels.find((c) => c.id === id);
      if (channel) return { guild, channel };
    }
    return undefined;
  }

  permissionsOf(guildId: string, userId: string): bigint {
    const g = this.guild(guildId);
    if (g.ownerId === userId) return ALL_PERMISSIONS;
    const m = g.members.get(userId);
    let p = BigInt(g.roles.find((r) => r.id === g.id)!.permissions);
    for (const rid of m?.roles ?? []) p |= BigInt(g.roles.find((r) => r.id === rid)?.permissions ?? '0');
    return p & Permission_Administrator ? ALL_PERMISSIONS : p;
  }

  // ---------------------------------------------------------------- gateway

  private onGateway(ws: WebSocket): void {
    const conn = { ws, seq: 0, intents: 0, ready: false };
    this.sockets.add(conn);
    ws.on('close', () => this.sockets.delete(conn));
    ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 41_250 }, s: null, t: null }));
    ws.on('message', (raw) => {
      let msg: { op: number; d: Record<string, unknown> | null };
      try {
        msg = JSON.parse(String(raw));
      } catch {
        return ws.close(4002, 'Decode error');
      }
      if (msg.op === 1) ws.send(JSON.stringify({ op: 11, d: null, s: null, t: null }));
      else if (msg.op === 2) {
        const d = msg.d as { token: string; intents: number };
        if (d.token !== this.token) return ws.close(4004, 'Authentication failed');
        conn.intents = d.intents;
        this.identifies.push({ intents: d.intents, at: Date.now() });
        const guilds = [...this.guilds.values()];
        this.dispatchTo(conn, 'READY', {
          v: 10,
          user: this.bot,
          guilds: guilds.map((g) => ({ id: g.id, unavailable: true })),
          session_id: randomBytes(8).toString('hex'),
          resume_gateway_url: `ws://127.0.0.1:${this.port}/gateway`,
          shard: [0, 1],
          application: { id: this.applicationId, flags: 0 },
        });
        for (const g of guilds) this.dispatchTo(conn, 'GUILD_CREATE', this.guildPayload(g));
        conn.ready = true;
        this.emit('identify', d.intents);
      } else if (msg.op === 6) {
        // No session resumption: make the client identify afresh.
        ws.send(JSON.stringify({ op: 9, d: false, s: null, t: null }));
      }
    });
  }

  private guildPayload(g: Guild): Record<string, unknown> {
    return {
      id: g.id,
      name: g.name,
      icon: null,
      owner_id: g.ownerId,
      roles: g.roles,
      channels: g.channels,
      members: [...g.members.values()],
      member_count: g.members.size,
      unavailable: false,
      large: false,
      joined_at: new Date(0).toISOString(),
      threads: [],
      presences: [],
      voice_states: [],
      emojis: [],
      stickers: [],
      features: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      mfa_level: 0,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
    };
  }

  private dispatchTo(conn: { ws: WebSocket; seq: number }, t: string, d: unknown): void {
    conn.seq += 1;
    conn.ws.send(JSON.stringify({ op: 0, t, s: conn.seq, d }));
  }

  private dispatch(t: string, d: unknown, intent?: number): void {
    for (const conn of this.sockets)
      if (conn.ready && (intent === undefined || conn.intents & intent)) this.dispatchTo(conn, t, d);
  }

  /** Whether a bot is connected and has received its guilds. */
  get connected(): boolean {
    return [...this.sockets].some((s) => s.ready);
  }

  /** Drops every gateway connection (the bot process "dies" from Discord's point of view). */
  disconnectAll(): void {
    for (const s of this.sockets) s.ws.terminate();
  }

  // ---------------------------------------------------------------- the users' side

  private interactionBase(type: number, u: ApiUser, channelId: string): FakeInteraction {
    const found = this.channel(channelId);
    if (!found) throw new Error(`no channel ${channelId}`);
    const { guild, channel } = found;
    const m = guild.members.get(u.id);
    if (!m) throw new Error(`${u.username} is not a member of ${guild.name}`);
    const id = snowflake();
    const token = `itok_${randomBytes(24).toString('hex')}`;
    const ix: FakeInteraction = {
      id,
      token,
      type,
      createdAt: Date.now(),
      user: u,
      channelId,
      guildId: guild.id,
      payload: {},
      ephemeral: [],
      followUps: [],
    };
    ix.payload = {
      id,
      application_id: this.applicationId,
      type,
      token,
      version: 1,
      guild_id: guild.id,
      channel_id: channelId,
      channel: { ...channel },
      member: { ...m, permissions: this.permissionsOf(guild.id, u.id).toString() },
      app_permissions: ALL_PERMISSIONS.toString(),
      locale: 'en-US',
      guild_locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: { '0': guild.id },
      context: 0,
      attachment_size_limit: this.o.attachmentSizeLimit,
    };
    this.interactions.set(token, ix);
    return ix;
  }

  /**
   * A user runs a slash command. Options are checked against what the bot registered (types, required,
   * choices, ranges), as the Discord client does before anything reaches the bot.
   */
  slashCommand(
    u: ApiUser,
    channelId: string,
    name: string,
    options: Record<string, string | number | boolean | { filename: string; data: Buffer }> = {},
  ): FakeInteraction {
    const guildId = this.channel(channelId)?.guild.id;
    const def = [...(this.commands.get(guildId ?? '') ?? []), ...(this.commands.get('global') ?? [])].find(
      (c) => c.name === name,
    );
    if (!def) throw new Error(`/${name} is not registered (deploy the commands first)`);
    const ix = this.interactionBase(2, u, channelId);
    const opts: { name: string; type: number; value: unknown }[] = [];
    const resolved: { attachments: Record<string, ApiAttachment> } = { attachments: {} };
    for (const o of def.options ?? []) {
      const v = options[o.name];
      if (v === undefined) {
        if (o.required) throw new Error(`/${name}: option ${o.name} is required`);
        continue;
      }
      if (o.type === 3 && typeof v !== 'string') throw new Error(`/${name}: ${o.name} must be a string`);
      if (o.type === 4 && (typeof v !== 'number' || !Number.isInteger(v)))
        throw new Error(`/${name}: ${o.name} must be an integer`);
      if (o.type === 5 && typeof v !== 'boolean') throw new Error(`/${name}: ${o.name} must be true or false`);
      if (o.choices && !o.choices.some((c) => c.value === v))
        throw new Error(`/${name}: ${o.name} must be one of the choices`);
      if (
        typeof v === 'number' &&
        ((o.min_value !== undefined && v < o.min_value) || (o.max_value !== undefined && v > o.max_value))
      ) {
        throw new Error(`/${name}: ${o.name} is out of range`);
      }
      if (o.type === 11) {
        if (typeof v !== 'object' || v === null) throw new Error(`/${name}: ${o.name} must be a file`);
        const att = this.storeAttachment(channelId, v.filename, v.data);
        resolved.attachments[att.id] = att;
        opts.push({ name: o.name, type: 11, value: att.id });
      } else opts.push({ name: o.name, type: o.type, value: v });
    }
    for (const k of Object.keys(options))
      if (!(def.options ?? []).some((o) => o.name === k)) throw new Error(`/${name} has no option ${k}`);
    ix.payload.data = {
      id: def.id,
      name,
      type: 1,
      options: opts,
      guild_id: guildId,
      ...(Object.keys(resolved.attachments).length ? { resolved } : {}),
    };
    this.dispatch('INTERACTION_CREATE', ix.payload);
    return ix;
  }

  /**
   * A user types into an option registered with autocomplete: Discord sends the options so far, the one being
   * typed marked `focused`, and waits up to 3 s for at most 25 choices (names of 1–100 characters).
   */
  autocomplete(
    u: ApiUser,
    channelId: string,
    name: string,
    focused: string,
    typed: string,
    options: Record<string, string | number | boolean> = {},
  ): FakeInteraction {
    const guildId = this.channel(channelId)?.guild.id;
    const def = [...(this.commands.get(guildId ?? '') ?? []), ...(this.commands.get('global') ?? [])].find(
      (c) => c.name === name,
    );
    if (!def) throw new Error(`/${name} is not registered (deploy the commands first)`);
    const opt = def.options?.find((o) => o.name === focused);
    if (!opt?.autocomplete) throw new Error(`/${name} has no autocomplete option ${focused}`);
    const ix = this.interactionBase(4, u, channelId);
    const opts = Object.entries(options).map(([k, v]) => ({
      name: k,
      type: def.options?.find((o) => o.name === k)?.type ?? 3,
      value: v,
    }));
    opts.push({ name: focused, type: opt.type, value: typed, focused: true } as (typeof opts)[number]);
    ix.payload.data = { id: def.id, name, type: 1, options: opts, guild_id: guildId };
    this.dispatch('INTERACTION_CREATE', ix.payload);
    return ix;
  }

  /** A user presses a button on a message. */
  clickButton(u: ApiUser, messageId: string, customId: string): FakeInteraction {
    const msg = this.messages.get(messageId);
    if (!msg) throw new Error(`no message ${messageId}`);
    const ids = (msg.components as { components: { custom_id?: string; disabled?: boolean }[] }[]).flatMap(
      (r) => r.components,
    );
    const button = ids.find((c) => c.custom_id === customId);
    if (!button)
      throw new Error(`message ${messageId} has no button ${customId} (has ${ids.map((c) => c.custom_id).join(', ')})`);
    if (button.disabled) throw new Error(`button ${customId} is disabled`);
    const ix = this.interactionBase(3, u, msg.channel_id);
    ix.payload.data = { custom_id: customId, component_type: 2 };
    ix.payload.message = msg;
    this.dispatch('INTERACTION_CREATE', ix.payload);
    return ix;
  }

  /** A user submits the modal the bot opened in answer to `opener`. */
  submitModal(opener: FakeInteraction, values: Record<string, string>): FakeInteraction {
    if (!opener.modal) throw new Error('the bot did not open a modal for that interaction');
    const ix = this.interactionBase(5, opener.user, opener.channelId);
    const rows = (opener.modal.components as { components: { custom_id: string }[] }[]).map((row) => ({
      type: 1,
      components: row.components.map((c) => ({ type: 4, custom_id: c.custom_id, value: values[c.custom_id] ?? '' })),
    }));
    ix.payload.data = { custom_id: opener.modal.custom_id, components: rows };
    const source = opener.payload.message as ApiMessage | undefined;
    if (source) ix.payload.message = this.messages.get(source.id) ?? source;
    this.dispatch('INTERACTION_CREATE', ix.payload);
    return ix;
  }

  /**
   * A user writes in a channel. `replyTo` makes it a reply (message reference type 0); `forward` makes it a
   * forward (type 1) of that message instead. Content reaches the bot only with the MessageContent intent,
   * unless the bot is mentioned.
   */
  userMessage(
    u: ApiUser,
    channelId: string,
    content: string,
    opts: { replyTo?: string; forward?: boolean; mentionBot?: boolean } = {},
  ): ApiMessage {
    const found = this.channel(channelId);
    if (!found) throw new Error(`no channel ${channelId}`);
    const m = found.guild.members.get(u.id);
    if (!m) throw new Error(`${u.username} is not a member`);
    const ref = opts.replyTo ? this.messages.get(opts.replyTo) : undefined;
    if (opts.replyTo && !ref) throw new Error(`no message ${opts.replyTo} to reply to`);
    const mentions = opts.mentionBot ? [this.bot] : [];
    const text = opts.mentionBot ? `<@${this.bot.id}> ${content}` : content;
    const msg = makeMessage({
      id: snowflake(),
      channel_id: channelId,
      guild_id: found.guild.id,
      author: u,
      content: opts.forward ? '' : text,
      mentions,
      type: ref && !opts.forward ? 19 : 0,
      ...(ref
        ? {
            message_reference: {
              type: opts.forward ? 1 : 0,
              message_id: ref.id,
              channel_id: ref.channel_id,
              guild_id: found.guild.id,
            },
          }
        : {}),
      ...(ref && !opts.forward ? { referenced_message: ref } : {}),
      ...(ref && opts.forward
        ? {
            message_snapshots: [
              {
                message: {
                  content: ref.content,
                  attachments: ref.attachments,
                  type: ref.type,
                  timestamp: ref.timestamp,
                },
              },
            ],
          }
        : {}),
    });
    this.messages.set(msg.id, msg);
    found.channel.last_message_id = msg.id;
    const { user: _u, ...memberNoUser } = m;
    const seen = (intents: number) => Boolean(intents & Intent.MessageContent) || opts.mentionBot;
    for (const conn of this.sockets) {
      if (!conn.ready || !(conn.intents & Intent.GuildMessages)) continue;
      const visible = seen(conn.intents) ? msg : { ...msg, content: '', attachments: [], embeds: [], components: [] };
      this.dispatchTo(conn, 'MESSAGE_CREATE', { ...visible, member: memberNoUser });
    }
    return msg;
  }

  /** Makes an interaction token invalid (as after 15 minutes). */
  expireToken(token: string): void {
    this.expiredTokens.add(token);
  }

  // ---------------------------------------------------------------- test helpers

  channelMessages(channelId: string): ApiMessage[] {
    return [...this.messages.values()]
      .filter((m) => m.channel_id === channelId)
      .sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  }

  /** Messages that reference `messageId` as a reply. */
  repliesTo(messageId: string): ApiMessage[] {
    return [...this.messages.values()].filter(
      (m) => m.message_reference?.message_id === messageId && m.message_reference.type === 0,
    );
  }

  attachmentBytes(att: ApiAttachment): Buffer {
    const data = this.attachmentsData.get(att.id);
    if (!data) throw new Error(`no data for attachment ${att.id}`);
    return data;
  }

  requestsTo(method: string, pathPattern: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && pathPattern.test(r.path));
  }

  /** Polls `fn` until it returns something truthy. */
  async waitFor<T>(fn: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`fake Discord: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  // ---------------------------------------------------------------- REST

  private storeAttachment(channelId: string, filename: string, data: Buffer, contentType?: string): ApiAttachment {
    const id = snowflake();
    const url = `http://127.0.0.1:${this.port}/attachments/${channelId}/${id}/${encodeURIComponent(filename)}`;
    this.attachmentsData.set(id, data);
    const type = contentType && contentType !== 'application/octet-stream' ? contentType : guessType(filename);
    return { id, filename, size: data.length, url, proxy_url: url, content_type: type };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${this.port}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const record: RecordedRequest = {
      at: Date.now(),
      method: req.method ?? 'GET',
      path: decodeURIComponent(url.pathname),
      query: url.searchParams,
      body: undefined,
      files: [],
      status: 0,
      response: undefined,
    };
    let status: number;
    let body: unknown;
    let headers: Record<string, string> = {};
    try {
      if (record.method === 'GET' && url.pathname.startsWith('/attachments/')) {
        const id = url.pathname.split('/')[3] ?? '';
        const data = this.attachmentsData.get(id);
        if (!data) throw new HttpError(404, { message: 'Not found' });
        res.writeHead(200, { 'content-type': guessType(url.pathname), 'content-length': data.length });
        res.end(data);
        return;
      }
      await this.parseBody(req, raw, record);
      headers = this.rateLimit(record);
      const out = await this.route(req, record);
      status = out.status;
      body = out.body;
    } catch (e) {
      if (e instanceof HttpError) {
        status = e.status;
        body = e.body;
        headers = { ...headers, ...e.headers };
      } else {
        status = 500;
        body = { message: `fake Discord bug: ${(e as Error).stack}` };
      }
    }
    record.status = status;
    record.response = body;
    this.requests.push(record);
    this.emit('request', record);
    if (status === 204) {
      // An empty body and no JSON content type, or undici's JSON parsing throws inside discord.js.
      res.writeHead(204, headers);
      res.end();
      return;
    }
    const text = JSON.stringify(body ?? {});
    res.writeHead(status, {
      ...headers,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }

  /** The channel a message write goes to (channel routes, and interaction webhooks by their interaction). */
  private writeChannel(r: RecordedRequest): string | undefined {
    if (r.method === 'GET') return undefined;
    const p = r.path.replace(/^\/api\/v10/, '');
    const ch = /^\/channels\/(\d+)\/messages(?:\/\d+)?$/.exec(p);
    if (ch) return ch[1];
    const wh = /^\/webhooks\/\d+\/([^/]+)/.exec(p);
    return wh ? this.interactions.get(wh[1]!)?.channelId : undefined;
  }

  /**
   * Discord's per-channel write limit, as Discord answers it: within the limit the X-RateLimit-* headers say
   * what is left; beyond it a 429 with retry_after (seconds) in the body and Retry-After in the headers.
   */
  private rateLimit(r: RecordedRequest): Record<string, string> {
    const limit = this.o.rateLimit;
    const channel = limit ? this.writeChannel(r) : undefined;
    if (!limit || !channel) return {};
    const now = Date.now();
    const recent = (this.channelWrites.get(channel) ?? []).filter((t) => t > now - limit.windowMs);
    this.channelWrites.set(channel, recent);
    const resetAfter = recent.length ? (recent[0]! + limit.windowMs - now) / 1000 : limit.windowMs / 1000;
    const headers = {
      'x-ratelimit-limit': String(limit.writes),
      'x-ratelimit-bucket': `channel-writes-${channel}`,
      'x-ratelimit-reset': ((now + resetAfter * 1000) / 1000).toFixed(3),
      'x-ratelimit-reset-after': resetAfter.toFixed(3),
    };
    if (recent.length >= limit.writes) {
      throw new HttpError(
        429,
        { message: 'You are being rate limited.', retry_after: Number(resetAfter.toFixed(3)), global: false },
        {
          ...headers,
          'x-ratelimit-remaining': '0',
          'x-ratelimit-scope': 'shared',
          'retry-after': String(Math.ceil(resetAfter)),
        },
      );
    }
    recent.push(now);
    return { ...headers, 'x-ratelimit-remaining': String(limit.writes - recent.length) };
  }

  private async parseBody(req: IncomingMessage, raw: Buffer, record: RecordedRequest): Promise<void> {
    const type = req.headers['content-type'] ?? '';
    if (raw.length === 0) return;
    if (type.startsWith('application/json')) {
      record.body = JSON.parse(raw.toString('utf8'));
    } else if (type.startsWith('multipart/form-data')) {
      const form = await new Response(raw, { headers: { 'content-type': type } }).formData();
      for (const [field, value] of form.entries()) {
        if (field === 'payload_json') record.body = JSON.parse(String(value));
        else if (typeof value !== 'string') {
          record.files.push({
            field,
            filename: value.name,
            contentType: value.type,
            data: Buffer.from(await value.arrayBuffer()),
          });
        }
      }
    }
  }

  private auth(req: IncomingMessage): void {
    if (req.headers.authorization !== `Bot ${this.token}`)
      throw new HttpError(401, { message: '401: Unauthorized', code: 0 });
  }

  private async route(req: IncomingMessage, r: RecordedRequest): Promise<{ status: number; body?: unknown }> {
    const p = r.path.replace(/^\/api\/v10/, '');
    const m = (re: RegExp) => re.exec(p);
    let g: RegExpExecArray | null;
    if (r.method === 'GET' && p === '/gateway/bot') {
      this.auth(req);
      return {
        status: 200,
        body: {
          url: `ws://127.0.0.1:${this.port}/gateway`,
          shards: 1,
          session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 },
        },
      };
    }
    if ((g = m(/^\/interactions\/(\d+)\/([^/]+)\/callback$/)) && r.method === 'POST')
      return this.callback(g[1]!, g[2]!, r);
    if ((g = m(/^\/webhooks\/(\d+)\/([^/]+)(?:\/messages\/([^/]+))?$/))) return this.webhook(g[1]!, g[2]!, g[3], r);
    this.auth(req);
    if (m(/^\/applications\/(\d+)\/commands$/) && r.method === 'PUT') return this.registerCommands('global', r);
    if ((g = m(/^\/applications\/(\d+)\/guilds\/(\d+)\/commands$/)) && r.method === 'PUT')
      return this.registerCommands(g[2]!, r);
    if ((g = m(/^\/channels\/(\d+)\/messages$/)) && r.method === 'POST')
      return { status: 200, body: this.createChannelMessage(g[1]!, r) };
    if ((g = m(/^\/channels\/(\d+)\/messages\/(\d+)$/))) return this.channelMessage(g[1]!, g[2]!, r);
    if ((g = m(/^\/channels\/(\d+)$/)) && r.method === 'GET') {
      const found = this.channel(g[1]!);
      if (!found) throw new HttpError(404, { message: 'Unknown Channel', code: 10003 });
      return { status: 200, body: found.channel };
    }
    if (m(/^\/channels\/(\d+)\/typing$/) && r.method === 'POST') return { status: 204 };
    if ((g = m(/^\/guilds\/(\d+)\/members\/(\d+)$/)) && r.method === 'GET') {
      const mem = this.guilds.get(g[1]!)?.members.get(g[2]!);
      if (!mem) throw new HttpError(404, { message: 'Unknown Member', code: 10007 });
      return { status: 200, body: mem };
    }
    if (p === '/users/@me' && r.method === 'GET') return { status: 200, body: this.bot };
    throw new HttpError(404, { message: `fake Discord has no route ${r.method} ${p}`, code: 0 });
  }

  private registerCommands(scope: string, r: RecordedRequest): { status: number; body: unknown } {
    const list = (r.body as Omit<Registered, 'id'>[]).map((c) => ({
      ...c,
      id: snowflake(),
      application_id: this.applicationId,
      version: snowflake(),
    }));
    this.commands.set(scope, list);
    return { status: 200, body: list };
  }

  private interactionFor(token: string, id?: string): FakeInteraction {
    const ix = this.interactions.get(token);
    if (!ix || (id !== undefined && ix.id !== id))
      throw new HttpError(404, { message: 'Unknown interaction', code: 10062 });
    return ix;
  }

  private tokenValid(ix: FakeInteraction): void {
    if (this.expiredTokens.has(ix.token) || Date.now() - ix.createdAt > this.o.tokenTtlMs) {
      throw new HttpError(401, { message: 'Invalid Webhook Token', code: 50027 });
    }
  }

  private callback(id: string, token: string, r: RecordedRequest): { status: number; body?: unknown } {
    const ix = this.interactionFor(token, id);
    if (ix.ackType !== undefined)
      throw new HttpError(400, { message: 'Interaction has already been acknowledged.', code: 40060 });
    const elapsed = Date.now() - ix.createdAt;
    if (elapsed > this.o.ackDeadlineMs) throw new HttpError(404, { message: 'Unknown interaction', code: 10062 });
    const body = r.body as { type: number; data?: Record<string, unknown> };
    ix.ackMs = elapsed;
    ix.ackType = body.type;
    const source = ix.payload.message as ApiMessage | undefined;
    let message: ApiMessage | undefined;
    switch (body.type) {
      case 4:
      case 5: {
        const flags = Number(body.data?.flags ?? 0);
        message = this.newBotMessage(
          ix.channelId,
          {
            ...(body.type === 4 ? this.messageFields(body.data ?? {}, r.files, ix.channelId) : {}),
            flags: (flags & EPHEMERAL) | (body.type === 5 ? LOADING : 0),
            type: ix.type === 2 ? 20 : 0,
            webhook_id: this.applicationId,
            application_id: this.applicationId,
            interaction_metadata: {
              id: ix.id,
              type: ix.type,
              user: ix.user,
              authorizing_integration_owners: { '0': ix.guildId },
              ...(source ? { interacted_message_id: source.id } : {}),
            },
          },
          (flags & EPHEMERAL) !== 0 ? ix : undefined,
        );
        ix.originalMessageId = message.id;
        break;
      }
      case 6:
        if (!source)
          throw new HttpError(400, { message: 'Invalid interaction response type for this interaction', code: 50035 });
        ix.originalMessageId = source.id;
        break;
      case 7: {
        if (!source)
          throw new HttpError(400, { message: 'Invalid interaction response type for this interaction', code: 50035 });
        ix.originalMessageId = source.id;
        message = this.editMessage(source.id, body.data ?? {}, r.files);
        break;
      }
      case 9:
        ix.modal = body.data as FakeInteraction['modal'];
        break;
      case 8: {
        if (ix.type !== 4)
          throw new HttpError(400, { message: 'Invalid interaction response type for this interaction', code: 50035 });
        const choices = (body.data?.choices ?? []) as { name: string; value: unknown }[];
        if (choices.length > 25 || choices.some((c) => !c.name || c.name.length > 100))
          throw new HttpError(400, {
            message: 'Invalid Form Body (choices: at most 25, names of 1-100 characters)',
            code: 50035,
          });
        ix.choices = choices;
        break;
      }
      default:
        throw new HttpError(400, { message: `fake Discord does not support callback type ${body.type}`, code: 50035 });
    }
    this.emit('callback', ix);
    if (r.query.get('with_response') === 'true') {
      return {
        status: 200,
        body: {
          interaction: { id: ix.id, type: ix.type },
          resource: { type: body.type, ...(message ? { message } : {}) },
        },
      };
    }
    return { status: 204 };
  }

  private webhook(
    appId: string,
    token: string,
    target: string | undefined,
    r: RecordedRequest,
  ): { status: number; body?: unknown } {
    if (appId !== this.applicationId) throw new HttpError(404, { message: 'Unknown Webhook', code: 10015 });
    const ix = this.interactionFor(token);
    this.tokenValid(ix);
    if (!target) {
      if (r.method !== 'POST') throw new HttpError(405, { message: '405: Method Not Allowed', code: 0 });
      const data = r.body as Record<string, unknown>;
      const flags = Number(data.flags ?? 0);
      const msg = this.newBotMessage(
        ix.channelId,
        {
          ...this.messageFields(data, r.files, ix.channelId),
          flags: flags & EPHEMERAL,
          webhook_id: this.applicationId,
          application_id: this.applicationId,
          interaction_metadata: {
            id: ix.id,
            type: ix.type,
            user: ix.user,
            authorizing_integration_owners: { '0': ix.guildId },
            original_response_message_id: ix.originalMessageId,
          },
        },
        (flags & EPHEMERAL) !== 0 ? ix : undefined,
      );
      ix.followUps.push(msg.id);
      return { status: 200, body: msg };
    }
    const id = target === '@original' ? ix.originalMessageId : target;
    if (!id || (target !== '@original' && !ix.followUps.includes(id)))
      throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    const existing = this.messages.get(id) ?? ix.ephemeral.find((e) => e.id === id);
    if (!existing) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    if (r.method === 'GET') return { status: 200, body: existing };
    if (r.method === 'DELETE') {
      this.deleteMessage(existing);
      return { status: 204 };
    }
    if (r.method === 'PATCH')
      return { status: 200, body: this.editMessage(id, r.body as Record<string, unknown>, r.files, ix) };
    throw new HttpError(405, { message: '405: Method Not Allowed', code: 0 });
  }

  private channelMessage(channelId: string, messageId: string, r: RecordedRequest): { status: number; body?: unknown } {
    const msg = this.messages.get(messageId);
    if (!msg || msg.channel_id !== channelId) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    if (r.method === 'GET') return { status: 200, body: msg };
    if (r.method === 'PATCH') {
      if (msg.author.id !== this.bot.id)
        throw new HttpError(403, { message: 'Cannot edit a message authored by another user', code: 50005 });
      return { status: 200, body: this.editMessage(messageId, r.body as Record<string, unknown>, r.files) };
    }
    if (r.method === 'DELETE') {
      const found = this.channel(channelId)!;
      if (msg.author.id !== this.bot.id && !(this.permissionsOf(found.guild.id, this.bot.id) & (1n << 13n))) {
        throw new HttpError(403, { message: 'Missing Permissions', code: 50013 });
      }
      this.deleteMessage(msg);
      return { status: 204 };
    }
    throw new HttpError(405, { message: '405: Method Not Allowed', code: 0 });
  }

  private createChannelMessage(channelId: string, r: RecordedRequest): ApiMessage {
    const found = this.channel(channelId);
    if (!found) throw new HttpError(404, { message: 'Unknown Channel', code: 10003 });
    const data = (r.body ?? {}) as Record<string, unknown> & {
      message_reference?: { message_id: string; fail_if_not_exists?: boolean; type?: number };
    };
    const fields = this.messageFields(data, r.files, channelId);
    if (!fields.content && !fields.attachments?.length && !(fields.components as unknown[] | undefined)?.length) {
      throw new HttpError(400, { message: 'Cannot send an empty message', code: 50006 });
    }
    let reference: Partial<ApiMessage> = {};
    if (data.message_reference) {
      const target = this.messages.get(data.message_reference.message_id);
      if (!target) {
        if (data.message_reference.fail_if_not_exists !== false) {
          throw new HttpError(400, {
            message: 'Invalid Form Body',
            code: 50035,
            errors: {
              message_reference: {
                _errors: [{ code: 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', message: 'Unknown message' }],
              },
            },
          });
        }
      } else {
        reference = {
          type: 19,
          message_reference: {
            type: data.message_reference.type ?? 0,
            message_id: target.id,
            channel_id: target.channel_id,
            guild_id: found.guild.id,
          },
          referenced_message: target,
        };
      }
    }
    return this.newBotMessage(channelId, { ...fields, ...reference });
  }

  /** Content, components and attachments of a create/edit body (with `attachments` semantics for edits). */
  private messageFields(
    data: Record<string, unknown>,
    files: RecordedFile[],
    channelId: string,
    existing?: ApiMessage,
  ): Partial<ApiMessage> {
    const out: Partial<ApiMessage> = {};
    if (typeof data.content === 'string') out.content = data.content;
    if (Array.isArray(data.components)) out.components = data.components;
    if (Array.isArray(data.embeds)) out.embeds = data.embeds;
    const uploaded = files.map((f, i) => ({
      index: String(i),
      field: f.field,
      att: this.storeAttachment(channelId, f.filename, f.data, f.contentType),
    }));
    const byField = (id: string) =>
      uploaded.find((u) => u.field === `files[${id}]`) ?? uploaded.find((u) => u.index === id);
    if (Array.isArray(data.attachments)) {
      const list: ApiAttachment[] = [];
      for (const a of data.attachments as { id: string | number; filename?: string }[]) {
        const up = byField(String(a.id));
        if (up) list.push({ ...up.att, filename: a.filename ?? up.att.filename });
        else {
          const kept = existing?.attachments.find((e) => e.id === String(a.id));
          if (!kept)
            throw new HttpError(400, {
              message: 'Invalid Form Body',
              code: 50035,
              errors: {
                attachments: { _errors: [{ code: 'ATTACHMENT_NOT_FOUND', message: `attachment ${a.id} not found` }] },
              },
            });
          list.push(kept);
        }
      }
      out.attachments = list;
    } else if (uploaded.length) {
      out.attachments = [...(existing?.attachments ?? []), ...uploaded.map((u) => u.att)];
    }
    if (data.allowed_mentions !== undefined) (out as Record<string, unknown>).allowed_mentions = data.allowed_mentions;
    return out;
  }

  private newBotMessage(channelId: string, fields: Partial<ApiMessage>, ephemeralFor?: FakeInteraction): ApiMessage {
    const found = this.channel(channelId);
    if (!found) throw new HttpError(404, { message: 'Unknown Channel', code: 10003 });
    const msg = makeMessage({
      id: snowflake(),
      channel_id: channelId,
      guild_id: found.guild.id,
      author: this.bot,
      ...fields,
    });
    delete (msg as unknown as Record<string, unknown>).allowed_mentions;
    if (ephemeralFor) {
      ephemeralFor.ephemeral.push(msg);
      return msg;
    }
    this.messages.set(msg.id, msg);
    this.lastAllowedMentions.set(msg.id, (fields as Record<string, unknown>).allowed_mentions);
    found.channel.last_message_id = msg.id;
    this.dispatch(
      'MESSAGE_CREATE',
      { ...msg, member: { ...found.guild.members.get(this.bot.id), user: undefined } },
      Intent.GuildMessages,
    );
    this.emit('message', msg);
    return msg;
  }

  /** allowed_mentions the bot sent with each message's latest create/edit (undefined: none sent). */
  readonly lastAllowedMentions = new Map<string, unknown>();

  private editMessage(
    id: string,
    data: Record<string, unknown>,
    files: RecordedFile[],
    ix?: FakeInteraction,
  ): ApiMessage {
    const eph = ix?.ephemeral.find((e) => e.id === id);
    const msg = eph ?? this.messages.get(id);
    if (!msg) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    const fields = this.messageFields(data ?? {}, files, msg.channel_id, msg);
    if ('allowed_mentions' in fields) {
      this.lastAllowedMentions.set(id, (fields as Record<string, unknown>).allowed_mentions);
      delete (fields as Record<string, unknown>).allowed_mentions;
    }
    Object.assign(msg, fields, { edited_timestamp: new Date().toISOString(), flags: msg.flags & ~LOADING });
    if (!eph) this.dispatch('MESSAGE_UPDATE', msg, Intent.GuildMessages);
    this.emit('edit', msg);
    return msg;
  }

  private deleteMessage(msg: ApiMessage): void {
    this.messages.delete(msg.id);
    this.dispatch(
      'MESSAGE_DELETE',
      { id: msg.id, channel_id: msg.channel_id, guild_id: msg.guild_id },
      Intent.GuildMessages,
    );
  }
}

const Permission_Administrator = 1n << 3n;

function guessType(name: string): string {
  if (/\.png$/i.test(name)) return 'image/png';
  if (/\.webp$/i.test(name)) return 'image/webp';
  if (/\.jpe?g$/i.test(name)) return 'image/jpeg';
  if (/\.json$/i.test(name)) return 'application/json';
  return 'application/octet-stream';
}
