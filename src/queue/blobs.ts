import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { isArtifactName } from './schema.ts';

/**
 * Files that travel through Redis between the bot and workers on other machines: a parent's image and
 * trajectory on the way to a repaint, a finished image and its artifacts on the way back. They are plain
 * binary string values with a TTL (so a bot that never comes back does not fill Redis for ever), and the
 * receiver deletes them once it has them on its own disk. A path in a job that travelled this way reads
 * `redis:<key>`.
 *
 * Redis is not trusted with the receiving machine's disk: a name and a reference read back from it are
 * accepted only in the exact shape this module writes (`<prefix>:blob:<job id>:<leg>:<name>`, the name a
 * plain file name), so a hand-written job or result can neither place a file outside the receiver's folder
 * nor make it read (and then delete) some other key.
 */
export const BLOB_REF = 'redis:';

export function isBlobRef(v: unknown): v is string {
  return typeof v === 'string' && v.startsWith(BLOB_REF);
}

/** Which way files go: a repaint's parent and mask up to a worker, a result (per claim token) back to the bot. */
export type BlobLeg = 'in:parent' | 'in:mask' | `out:${string}`;

/** The key folder of one job's files on one leg; a file's key is `<base>:<name>`. */
export function blobBase(prefix: string, jobId: string, leg: BlobLeg): string {
  return `${prefix}:blob:${jobId}:${leg}`;
}

// What blobBase produces, for any prefix and job id: prefixes and job ids are slugs (see queueName), the out
// leg's suffix is the 8 hex digits of a claim token.
const BLOB_KEY = /^[A-Za-z0-9._-]{1,64}:blob:[A-Za-z0-9_-]{1,64}:(?:in:parent|in:mask|out:[0-9a-f]{8}):([^:]+)$/;

function refName(ref: string): string | undefined {
  if (!ref.startsWith(BLOB_REF)) return undefined;
  const name = BLOB_KEY.exec(ref.slice(BLOB_REF.length))?.[1];
  return name !== undefined && isArtifactName(name) ? name : undefined;
}

/** A reference to a file the queue stored: `redis:<prefix>:blob:<job id>:<leg>:<name>`. */
export const BlobRefSchema = z.string().refine((v) => refName(v) !== undefined, {
  message: 'not a reference to a file the queue stored (redis:<prefix>:blob:<job id>:<leg>:<file name>)',
});

/** Files by name, each a reference whose own name is that name (so a name cannot be swapped for another key). */
export const BlobFilesSchema = z.record(z.string(), z.string()).superRefine((files, ctx) => {
  for (const [name, ref] of Object.entries(files)) {
    if (!isArtifactName(name))
      ctx.addIssue({ code: 'custom', path: [name], message: 'not a plain file name (letters, digits, ".", "_", "-")' });
    else if (refName(ref) !== name)
      ctx.addIssue({ code: 'custom', path: [name], message: `not the queue's reference for a file named ${name}` });
  }
});

/**
 * The base a finished job's files were stored under by the worker that completed it (`out:<its claim's 8 hex
 * digits>`), read from the image's reference; undefined when that reference is not of this job's result.
 */
export function resultBase(prefix: string, jobId: string, files: Record<string, string>): string | undefined {
  const image = files['image.png'];
  const tail = ':image.png';
  if (!image?.startsWith(BLOB_REF) || !image.endsWith(tail)) return undefined;
  const base = image.slice(BLOB_REF.length, -tail.length);
  const out = blobBase(prefix, jobId, 'out:');
  return base.startsWith(out) && /^[0-9a-f]{8}$/.test(base.slice(out.length)) ? base : undefined;
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
    if (!isArtifactName(name)) throw new BlobRefusedError(`"${name}" is not a plain file name; it was not sent`);
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

/** A name or reference from Redis that is not one the queue wrote: nothing was read or written for it. */
export class BlobRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BlobRefusedError';
  }
}

function writeAtomic(file: string, data: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** At most this much of a refused name or reference goes into a message (it was written by someone else). */
function shown(s: string): string {
  return JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}…` : s);
}

/**
 * The file each reference will become in `dir`, after checking it: the name is a plain file name, and the
 * reference is exactly `redis:<base>:<name>` for the base this job's files were stored under.
 */
function destinations(refs: Record<string, string>, dir: string, base: string): [string, string, string][] {
  const root = path.resolve(dir);
  return Object.entries(refs).map(([name, ref]) => {
    if (!isArtifactName(name))
      throw new BlobRefusedError(`the file name ${shown(name)} is not a plain file name, so it was not written`);
    if (ref !== `${BLOB_REF}${base}:${name}`)
      throw new BlobRefusedError(
        `the file ${name} points at ${shown(ref)}, not at this job's own files (${BLOB_REF}${base}:${name})`,
      );
    const file = path.join(root, name);
    // Already implied by the name's alphabet; checked again where the write happens.
    if (path.dirname(file) !== root) throw new BlobRefusedError(`${shown(name)} would be written outside ${root}`);
    return [name, base + ':' + name, file];
  });
}

/**
 * Fetches every reference into `dir/<name>`. Each must be `redis:<base>:<name>` (see destinations): throws
 * BlobRefusedError before reading anything if one is not, BlobMissingError naming the ones that expired.
 */
export async function getFiles(
  redis: Redis,
  refs: Record<string, string>,
  dir: string,
  base: string,
): Promise<Record<string, string>> {
  const entries = destinations(refs, dir, base);
  const values = entries.length ? await redis.mgetBuffer(...entries.map(([, key]) => key)) : [];
  const missing = entries.filter((_, i) => values[i] === null).map(([name]) => name);
  if (missing.length) throw new BlobMissingError(missing);
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  entries.forEach(([name, , file], i) => {
    out[name] = file;
    writeAtomic(file, values[i]!);
  });
  return out;
}

/** Deletes the keys behind references; only references the queue writes are followed. */
export async function deleteRefs(redis: Redis, refs: Iterable<string>): Promise<void> {
  const keys = [...refs].filter((r) => refName(r) !== undefined).map((r) => r.slice(BLOB_REF.length));
  if (keys.length) await redis.del(...keys);
}
