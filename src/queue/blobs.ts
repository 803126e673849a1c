import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';

/**
 * Files that travel through Redis between the bot and workers on other machines: a parent's image and
 * trajectory on the way to a repaint, a finished image and its artifacts on the way back. They are plain
 * binary string values with a TTL (so a bot that never comes back does not fill Redis for ever), and the
 * receiver deletes them once it has them on its own disk. A path in a job that travelled this way reads
 * `redis:<key>`.
 */
export const BLOB_REF = 'redis:';

export function isBlobRef(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(BLOB_REF);
}

/** Stores files under `<base>:<name>` and returns name → `redis:<key>`. */
export async function putFiles(
  redis: Redis,
  base: string,
  files: Record<string, string>,
  ttlSeconds: number,
): Promise<Record<string, string>> {
  const refs: Record<string, string> = {};
  const tx = redis.multi();
  for (const [name, file] of Object.entries(files)) {
    const key = `${base}:${name}`;
    tx.set(key, readFileSync(file), 'EX', ttlSeconds);
    refs[name] = BLOB_REF + key;
  }
  await tx.exec();
  return refs;
}

export class BlobMissingError extends Error {
  constructor(readonly missing: string[]) {
    super(`not in Redis any more: ${missing.join(', ')}`);
    this.name = 'BlobMissingError';
  }
}

function writeAtomic(file: string, data: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** Fetches every `redis:` reference into `dir/<name>`; throws BlobMissingError naming the ones that expired. */
export async function getFiles(
  redis: Redis,
  refs: Record<string, string>,
  dir: string,
): Promise<Record<string, string>> {
  const entries = Object.entries(refs);
  const values = entries.length ? await redis.mgetBuffer(...entries.map(([, ref]) => ref.slice(BLOB_REF.length))) : [];
  const missing = entries.filter((_, i) => values[i] === null).map(([name]) => name);
  if (missing.length) throw new BlobMissingError(missing);
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  entries.forEach(([name], i) => {
    out[name] = path.join(dir, name);
    writeAtomic(out[name], values[i]!);
  });
  return out;
}

export async function deleteRefs(redis: Redis, refs: Iterable<string>): Promise<void> {
  const keys = [...refs].filter(isBlobRef).map((r) => r.slice(BLOB_REF.length));
  if (keys.length) await redis.del(...keys);
}
