import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

/** The one SQLite file every part of the bot shares (store, embedded queue), inside DATA_DIR. */
export const DB_FILE = 'scenewright.sqlite';

/**
 * Opens (creating if needed) the SQLite database in `dataDir`. WAL lets a separate `worker` process read
 * and write the same file while the bot runs; the busy timeout turns short write contention into waiting
 * instead of SQLITE_BUSY errors.
 */
export function openDatabase(dataDir: string): Db {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (e) {
    throw new Error(
      `cannot create the data folder ${dataDir} (${(e as Error).message}): set DATA_DIR to a writable folder`,
      { cause: e },
    );
  }
  const file = path.join(dataDir, DB_FILE);
  let db: Db;
  try {
    db = new Database(file);
  } catch (e) {
    throw new Error(`cannot open the database ${file} (${(e as Error).message}): check DATA_DIR and its permissions`, {
      cause: e,
    });
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

/** One schema change; applied once, in order, inside a transaction. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/**
 * Brings one component's tables up to date. Each component (store, queue) keeps its own version number,
 * so they can evolve separately in the same file. A database written by a newer program is refused rather
 * than silently misread.
 */
export function migrate(db: Db, component: string, migrations: readonly Migration[]): void {
  db.exec(
    `CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL, updated_at INTEGER NOT NULL)`,
  );
  const known = Math.max(0, ...migrations.map((m) => m.version));
  const apply = db.transaction(() => {
    const row = db.prepare('SELECT version FROM schema_versions WHERE component = ?').get(component) as
      { version: number } | undefined;
    const current = row?.version ?? 0;
    if (current > known) {
      throw new Error(
        `the database's ${component} schema is version ${current}, newer than this program knows (${known}): update scenewright or use another DATA_DIR`,
      );
    }
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version <= current) continue;
      db.exec(m.sql);
      db.prepare(
        'INSERT INTO schema_versions (component, version, updated_at) VALUES (?, ?, ?) ON CONFLICT(component) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at',
      ).run(component, m.version, Date.now());
    }
  });
  // IMMEDIATE: two processes starting together must not both apply the same migration.
  apply.immediate();
}

export function schemaVersion(db: Db, component: string): number {
  const row = db.prepare('SELECT version FROM schema_versions WHERE component = ?').get(component) as
    { version: number } | undefined;
  return row?.version ?? 0;
}
