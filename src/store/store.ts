import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Db, Migration } from './db.ts';
import { migrate } from './db.ts';
import { newId } from './ids.ts';
import {
  GenerationParamsSchema,
  UserSettingsSchema,
  type Generation,
  type GenerationKind,
  type GenerationParams,
  type GenerationStatus,
  type MessageLink,
  type MessageRole,
  type UserSettings,
} from './schema.ts';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'generations, message links, user settings, usage counters',
    sql: `
      CREATE TABLE generations (
        id TEXT PRIMARY KEY,
        parent_id TEXT REFERENCES generations(id) ON DELETE SET NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        user_id TEXT NOT NULL,
        guild_id TEXT,
        channel_id TEXT NOT NULL,
        request_text TEXT NOT NULL,
        params_json TEXT NOT NULL,
        planner TEXT,
        model_id TEXT,
        model_version TEXT,
        job_id TEXT,
        artifacts_json TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        timings_json TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER
      );
      CREATE INDEX generations_user ON generations(user_id, created_at);
      CREATE INDEX generations_parent ON generations(parent_id);
      CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL,
        generation_id TEXT NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX messages_generation ON messages(generation_id);
      CREATE TABLE user_settings (
        user_id TEXT PRIMARY KEY,
        settings_json TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE usage (
        user_id TEXT NOT NULL,
        day TEXT NOT NULL,
        kind TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (user_id, day, kind)
      );
    `,
  },
  {
    version: 2,
    description: 'conversation context on message links (what led to a clarifying question)',
    sql: `ALTER TABLE messages ADD COLUMN context_json TEXT;`,
  },
  {
    version: 3,
    description: 'interactions being answered (to tell users after a crash instead of leaving "thinking…")',
    sql: `CREATE TABLE pending_interactions (
      token TEXT PRIMARY KEY,
      interaction_id TEXT NOT NULL,
      channel_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      created_at INTEGER NOT NULL
    );`,
  },
  {
    version: 4,
    description:
      'messages being answered (mentions, reply-edits) and results Discord would not take, as for interactions',
    sql: `CREATE TABLE pending_messages (
      message_id TEXT PRIMARY KEY,
      channel_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      created_at INTEGER NOT NULL
    );
    CREATE TABLE delivery_failures (
      job_id TEXT PRIMARY KEY,
      failures INTEGER NOT NULL,
      last_error TEXT,
      updated_at INTEGER NOT NULL
    );`,
  },
];

/** A user's message the bot started answering (an @mention or a reply asking for a change). */
export interface PendingMessage {
  messageId: string;
  channelId: string;
  userId: string;
  createdAt: number;
}

export interface PendingInteraction {
  token: string;
  interactionId: string;
  channelId: string;
  userId: string;
  createdAt: number;
}

interface GenerationRow {
  id: string;
  parent_id: string | null;
  kind: GenerationKind;
  status: GenerationStatus;
  user_id: string;
  guild_id: string | null;
  channel_id: string;
  request_text: string;
  params_json: string;
  planner: string | null;
  model_id: string | null;
  model_version: string | null;
  job_id: string | null;
  artifacts_json: string;
  error: string | null;
  timings_json: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** A stored row that no longer parses: reported with the generation id so it can be found and fixed. */
export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

interface MessageRow {
  message_id: string;
  channel_id: string;
  generation_id: string;
  role: MessageRole;
  created_at: number;
  context_json: string | null;
}

function linkFromRow(r: MessageRow): MessageLink {
  const context = r.context_json ? (JSON.parse(r.context_json) as { history?: unknown }) : {};
  const history = Array.isArray(context.history)
    ? context.history.filter((h): h is string => typeof h === 'string')
    : [];
  return {
    messageId: r.message_id,
    channelId: r.channel_id,
    generationId: r.generation_id,
    role: r.role,
    createdAt: r.created_at,
    history,
  };
}

function fromRow(row: GenerationRow): Generation {
  const params = GenerationParamsSchema.safeParse(JSON.parse(row.params_json));
  if (!params.success)
    throw new StoreError(
      `generation ${row.id} has unreadable parameters: ${params.error.issues[0]?.message ?? 'invalid'}`,
    );
  return {
    id: row.id,
    parentId: row.parent_id,
    kind: row.kind,
    status: row.status,
    userId: row.user_id,
    guildId: row.guild_id,
    channelId: row.channel_id,
    requestText: row.request_text,
    params: params.data,
    planner: row.planner,
    modelId: row.model_id,
    modelVersion: row.model_version,
    jobId: row.job_id,
    artifacts: JSON.parse(row.artifacts_json) as Record<string, string>,
    error: row.error,
    timings: JSON.parse(row.timings_json) as Record<string, number>,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export interface NewGeneration {
  id?: string;
  parentId?: string | null;
  kind: GenerationKind;
  status: GenerationStatus;
  userId: string;
  guildId?: string | null;
  channelId: string;
  requestText: string;
  params: GenerationParams;
  planner?: string | null;
  timings?: Record<string, number>;
}

export interface GenerationUpdate {
  status?: GenerationStatus;
  jobId?: string | null;
  modelId?: string | null;
  modelVersion?: string | null;
  error?: string | null;
  startedAt?: number | null;
  finishedAt?: number | null;
  /** Merged into the stored timings. */
  timings?: Record<string, number>;
  /** Merged into the stored artifacts. */
  artifacts?: Record<string, string>;
}

export interface UsageCount {
  kind: string;
  today: number;
  total: number;
}

function today(now = Date.now()): string {
  return new Date(now).toISOString().slice(0, 10);
}

/**
 * The bot's durable state: generations (full parameters, lineage, status, timings, artifacts), which
 * Discord message shows which generation, per-user settings and usage counters. Artifacts are files under
 * `<dataDir>/artifacts/<generation id>/`; rows hold their absolute paths.
 */
export class Store {
  readonly artifactsDir: string;

  constructor(
    readonly db: Db,
    dataDir: string,
  ) {
    migrate(db, 'store', MIGRATIONS);
    this.artifactsDir = path.join(dataDir, 'artifacts');
  }

  createGeneration(input: NewGeneration): Generation {
    const params = GenerationParamsSchema.parse(input.params);
    const id = input.id ?? newId('g');
    this.db
      .prepare(
        `INSERT INTO generations (id, parent_id, kind, status, user_id, guild_id, channel_id, request_text, params_json, planner, timings_json, created_at)
         VALUES (@id, @parentId, @kind, @status, @userId, @guildId, @channelId, @requestText, @params, @planner, @timings, @createdAt)`,
      )
      .run({
        id,
        parentId: input.parentId ?? null,
        kind: input.kind,
        status: input.status,
        userId: input.userId,
        guildId: input.guildId ?? null,
        channelId: input.channelId,
        requestText: input.requestText,
        params: JSON.stringify(params),
        planner: input.planner ?? null,
        timings: JSON.stringify(input.timings ?? {}),
        createdAt: Date.now(),
      });
    return this.getGeneration(id)!;
  }

  getGeneration(id: string): Generation | undefined {
    const row = this.db.prepare('SELECT * FROM generations WHERE id = ?').get(id) as GenerationRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  updateGeneration(id: string, update: GenerationUpdate): Generation {
    const run = this.db.transaction(() => {
      const current = this.getGeneration(id);
      if (!current) throw new StoreError(`generation ${id} does not exist`);
      const next = {
        status: update.status ?? current.status,
        jobId: update.jobId !== undefined ? update.jobId : current.jobId,
        modelId: update.modelId !== undefined ? update.modelId : current.modelId,
        modelVersion: update.modelVersion !== undefined ? update.modelVersion : current.modelVersion,
        error: update.error !== undefined ? update.error : current.error,
        startedAt: update.startedAt !== undefined ? update.startedAt : current.startedAt,
        finishedAt: update.finishedAt !== undefined ? update.finishedAt : current.finishedAt,
        timings: JSON.stringify({ ...current.timings, ...update.timings }),
        artifacts: JSON.stringify({ ...current.artifacts, ...update.artifacts }),
      };
      this.db
        .prepare(
          `UPDATE generations SET status = @status, job_id = @jobId, model_id = @modelId, model_version = @modelVersion, error = @error,
             started_at = @startedAt, finished_at = @finishedAt, timings_json = @timings, artifacts_json = @artifacts WHERE id = @id`,
        )
        .run({ id, ...next });
    });
    run.immediate();
    return this.getGeneration(id)!;
  }

  /** Replaces the parameters (before painting starts: e.g. to point at an artifact written after creation). */
  updateParams(id: string, params: GenerationParams): void {
    const parsed = GenerationParamsSchema.parse(params);
    this.db.prepare('UPDATE generations SET params_json = ? WHERE id = ?').run(JSON.stringify(parsed), id);
  }

  /** The chain of generations from this one back to the first (this one first). */
  lineage(id: string, maxDepth = 100): Generation[] {
    const out: Generation[] = [];
    let cur = this.getGeneration(id);
    while (cur && out.length < maxDepth) {
      out.push(cur);
      cur = cur.parentId ? this.getGeneration(cur.parentId) : undefined;
    }
    return out;
  }

  /** The most recent time this user started a generation (for the cooldown), or undefined. */
  lastRequestAt(userId: string): number | undefined {
    const row = this.db.prepare('SELECT max(created_at) AS t FROM generations WHERE user_id = ?').get(userId) as {
      t: number | null;
    };
    return row.t ?? undefined;
  }

  /** Folder for one generation's files, created on demand. */
  artifactFolder(generationId: string): string {
    const dir = path.join(this.artifactsDir, generationId);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Writes a file next to the generation and records it by name. Names are plain file names. */
  writeArtifact(generationId: string, name: string, data: Uint8Array): string {
    if (!/^[A-Za-z0-9._-]{1,80}$/.test(name) || name.startsWith('.'))
      throw new StoreError(`artifact name "${name}" is not a plain file name`);
    const file = path.join(this.artifactFolder(generationId), name);
    writeFileSync(file, data);
    this.updateGeneration(generationId, { artifacts: { [name]: file } });
    return file;
  }

  /** `history`: for a clarifying question, the instructions and questions that led to it (oldest first). */
  linkMessage(messageId: string, channelId: string, generationId: string, role: MessageRole, history?: string[]): void {
    this.db
      .prepare(
        `INSERT INTO messages (message_id, channel_id, generation_id, role, created_at, context_json) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(message_id) DO UPDATE SET generation_id = excluded.generation_id, role = excluded.role, context_json = excluded.context_json`,
      )
      .run(messageId, channelId, generationId, role, Date.now(), history ? JSON.stringify({ history }) : null);
  }

  messageLink(messageId: string): MessageLink | undefined {
    const row = this.db.prepare('SELECT * FROM messages WHERE message_id = ?').get(messageId) as MessageRow | undefined;
    return row ? linkFromRow(row) : undefined;
  }

  generationForMessage(messageId: string): Generation | undefined {
    const link = this.messageLink(messageId);
    return link ? this.getGeneration(link.generationId) : undefined;
  }

  messagesFor(generationId: string): MessageLink[] {
    const rows = this.db
      .prepare('SELECT * FROM messages WHERE generation_id = ? ORDER BY created_at, rowid')
      .all(generationId) as MessageRow[];
    return rows.map(linkFromRow);
  }

  unlinkMessage(messageId: string): void {
    this.db.prepare('DELETE FROM messages WHERE message_id = ?').run(messageId);
  }

  /** An interaction the bot started answering; removed when the answer is done (or failed visibly). */
  addPending(p: Omit<PendingInteraction, 'createdAt'>): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO pending_interactions (token, interaction_id, channel_id, user_id, created_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(p.token, p.interactionId, p.channelId, p.userId, Date.now());
  }

  removePending(token: string): void {
    this.db.prepare('DELETE FROM pending_interactions WHERE token = ?').run(token);
  }

  /** Every interaction a previous process left unanswered, removed from the table as they are returned. */
  takePending(): PendingInteraction[] {
    return this.db
      .transaction(() => {
        const rows = this.db.prepare('SELECT * FROM pending_interactions ORDER BY created_at').all() as {
          token: string;
          interaction_id: string;
          channel_id: string;
          user_id: string;
          created_at: number;
        }[];
        this.db.prepare('DELETE FROM pending_interactions').run();
        return rows.map((r) => ({
          token: r.token,
          interactionId: r.interaction_id,
          channelId: r.channel_id,
          userId: r.user_id,
          createdAt: r.created_at,
        }));
      })
      .immediate();
  }

  /**
   * Moves what the write-ahead log holds into the database file and empties the log. SQLite's own automatic
   * checkpoints give up while another connection reads (the queue polls all the time), so the bot runs this
   * on a timer. Returns whether it completed (false: a reader or writer was busy; the next one catches up).
   */
  checkpoint(): { complete: boolean; pages: number } {
    const [r] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    return { complete: r !== undefined && r.busy === 0, pages: r?.checkpointed ?? 0 };
  }

  /**
   * Folders in artifacts/ named like generations the database does not know: left by a database that was
   * deleted or replaced, or copied in by hand. Reported, never deleted (they may be someone's only copy).
   */
  unknownArtifactFolders(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.artifactsDir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return [];
    }
    const known = this.db.prepare('SELECT 1 FROM generations WHERE id = ?');
    return names.filter((n) => !known.get(n)).sort();
  }

  /** A message the bot started answering; removed once answered (or answered with an error). */
  addPendingMessage(p: Omit<PendingMessage, 'createdAt'>): void {
    this.db
      .prepare(
        'INSERT OR REPLACE INTO pending_messages (message_id, channel_id, user_id, created_at) VALUES (?, ?, ?, ?)',
      )
      .run(p.messageId, p.channelId, p.userId, Date.now());
  }

  removePendingMessage(messageId: string): void {
    this.db.prepare('DELETE FROM pending_messages WHERE message_id = ?').run(messageId);
  }

  /** Messages a previous process left unanswered, oldest first (each is removed once it has been answered). */
  pendingMessages(): PendingMessage[] {
    const rows = this.db.prepare('SELECT * FROM pending_messages ORDER BY created_at').all() as {
      message_id: string;
      channel_id: string;
      user_id: string;
      created_at: number;
    }[];
    return rows.map((r) => ({
      messageId: r.message_id,
      channelId: r.channel_id,
      userId: r.user_id,
      createdAt: r.created_at,
    }));
  }

  /** Counts one more failed attempt to show a job's result; returns how many there have been, across restarts. */
  noteDeliveryFailure(jobId: string, error: string): number {
    const row = this.db
      .prepare(
        `INSERT INTO delivery_failures (job_id, failures, last_error, updated_at) VALUES (?, 1, ?, ?)
         ON CONFLICT(job_id) DO UPDATE SET failures = failures + 1, last_error = excluded.last_error, updated_at = excluded.updated_at
         RETURNING failures`,
      )
      .get(jobId, error.slice(0, 500), Date.now()) as { failures: number };
    return row.failures;
  }

  clearDeliveryFailures(jobId: string): void {
    this.db.prepare('DELETE FROM delivery_failures WHERE job_id = ?').run(jobId);
  }

  getUserSettings(userId: string): UserSettings {
    const row = this.db.prepare('SELECT settings_json FROM user_settings WHERE user_id = ?').get(userId) as
      { settings_json: string } | undefined;
    if (!row) return {};
    const parsed = UserSettingsSchema.safeParse(JSON.parse(row.settings_json));
    // Settings written by an older version that no longer validate fall back to the defaults.
    return parsed.success ? parsed.data : {};
  }

  /** Merges `patch` into the user's settings; a field set to null is cleared. */
  setUserSettings(userId: string, patch: { [K in keyof UserSettings]?: UserSettings[K] | null }): UserSettings {
    const merged: Record<string, unknown> = { ...this.getUserSettings(userId) };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete merged[k];
      else if (v !== undefined) merged[k] = v;
    }
    const settings = UserSettingsSchema.parse(merged);
    this.db
      .prepare(
        `INSERT INTO user_settings (user_id, settings_json, updated_at) VALUES (?, ?, ?)
         ON CONFLICT(user_id) DO UPDATE SET settings_json = excluded.settings_json, updated_at = excluded.updated_at`,
      )
      .run(userId, JSON.stringify(settings), Date.now());
    return settings;
  }

  countUsage(userId: string, kind: string, now = Date.now()): void {
    this.db
      .prepare(
        `INSERT INTO usage (user_id, day, kind, count) VALUES (?, ?, ?, 1)
         ON CONFLICT(user_id, day, kind) DO UPDATE SET count = count + 1`,
      )
      .run(userId, today(now), kind);
  }

  usage(userId: string, now = Date.now()): UsageCount[] {
    const rows = this.db
      .prepare(
        `SELECT kind, sum(CASE WHEN day = ? THEN count ELSE 0 END) AS today, sum(count) AS total FROM usage WHERE user_id = ? GROUP BY kind ORDER BY kind`,
      )
      .all(today(now), userId) as UsageCount[];
    return rows;
  }
}
