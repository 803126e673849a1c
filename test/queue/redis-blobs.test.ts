// Redis is not trusted with anyone's disk: file names and references in a job (read by a worker) or in a result
// (read by the bot) are written by whoever can write to Redis. Here a hand-made job and a hand-made result try to
// place files outside the receiver's folder and to make it read (and delete) some other key; a real redis-server.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue, Worker, type Job as BullJob } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BlobRefusedError, getFiles } from '../../src/queue/blobs.ts';
import { RedisQueue, type Job } from '../../src/queue/index.ts';
import { queueName } from '../../src/queue/redis-queue.ts';
import { openDatabase, type Db } from '../../src/store/db.ts';
import { RedisServer } from '../support/redis-server.ts';

const MODEL = 'flux.1-schnell';
const scene = {
  width: 256,
  height: 256,
  prompt: 'a red ball',
  background: '',
  exclude: [],
  regions: [{ id: 'r1', label: 'a red ball', prompt: 'a shiny red ball', box: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 } }],
};
const params = { scene, seed: 1, steps: 2, model: MODEL };

let server: RedisServer;
let redis: Redis;
let dir: string;
let db: Db;
let prefix: string;
let bot: RedisQueue;
let worker: RedisQueue;

beforeAll(async () => {
  server = await RedisServer.start();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});
beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sw-blobs-'));
  db = openDatabase(dir);
  prefix = `t${Math.random().toString(36).slice(2, 8)}`;
  bot = await RedisQueue.open({ url: server.url, db, dataDir: dir, prefix, reconcileMs: 100 });
  worker = await RedisQueue.open({ url: server.url, prefix, heartbeatMs: 200, stalledIntervalMs: 300 });
  await worker.serve('w', { id: MODEL, version: 'test' });
});
afterEach(async () => {
  await worker.close();
  await bot.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

async function until(id: string, pred: (j: Job) => boolean, ms = 10_000): Promise<Job> {
  const end = Date.now() + ms;
  for (;;) {
    const j = (await bot.get(id))!;
    if (pred(j)) return j;
    if (Date.now() > end) throw new Error(`job ${id} stuck in ${j.status} (${j.error ?? ''})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The job once it has ended, whichever way: the assertions say which way it should have. */
const finished = (id: string) => until(id, (j) => j.finishedAt !== null);

/** Completes the bot's next job the way a hostile writer to Redis could: `blobs` stored, `files` as its result. */
async function completeWith(
  files: (id: string) => Record<string, string>,
  blobs: (id: string) => Record<string, string> = () => ({}),
): Promise<string> {
  const { job } = await bot.enqueue({
    userId: 'u',
    request: { kind: 'generate', generationId: 'g1', params },
    target: { userId: 'u', guildId: 'g', channelId: 'c' },
  });
  const raw = new Worker(queueName(MODEL), null, { connection: { url: server.url }, prefix, autorun: false });
  try {
    const bull = (await raw.getNextJob('evil', { block: true })) as BullJob;
    expect(bull.id).toBe(job.id);
    for (const [key, value] of Object.entries(blobs(job.id))) await redis.set(key, value);
    await bull.moveToCompleted({ files: files(job.id), model: { id: MODEL, version: 'x' }, paintMs: 1 }, 'evil', false);
  } finally {
    await raw.close();
  }
  return job.id;
}

describe('files through Redis are written only under their own names, from their own keys', () => {
  it("a result whose file name climbs out of the bot's artifacts folder is refused and nothing is written", async () => {
    const base = (id: string) => `${prefix}:blob:${id}:out:0badc0de`;
    const id = await completeWith(
      (id) => ({
        'image.png': `redis:${base(id)}:image.png`,
        '../../escaped.txt': `redis:${base(id)}:../../escaped.txt`,
      }),
      (id) => ({ [`${base(id)}:image.png`]: 'png', [`${base(id)}:../../escaped.txt`]: 'ssh-ed25519 AAAA attacker' }),
    );
    const failed = await finished(id);
    // ../../ from <dataDir>/artifacts/g1 is <dataDir> itself.
    expect(existsSync(path.join(dir, 'escaped.txt'))).toBe(false);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/names files that are not this job's own \(.*not a plain file name.*\)/);
    expect(existsSync(path.join(dir, 'artifacts', 'g1'))).toBe(false);
  });

  it('a result whose reference names another key is refused: that key is neither copied to disk nor deleted', async () => {
    await redis.set(`${prefix}:secret`, 'not for the bot');
    const id = await completeWith(() => ({ 'image.png': `redis:${prefix}:secret` }));
    const failed = await finished(id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/names files that are not this job's own/);
    expect(await redis.get(`${prefix}:secret`)).toBe('not for the bot');
    expect(existsSync(path.join(dir, 'artifacts', 'g1', 'image.png'))).toBe(false);
  });

  it("a result that points at another job's files is refused", async () => {
    await redis.set(`${prefix}:blob:jother:out:12345678:image.png`, 'someone else');
    const id = await completeWith(() => ({ 'image.png': `redis:${prefix}:blob:jother:out:12345678:image.png` }));
    expect((await finished(id)).error).toMatch(/names files that are not this job's own/);
    expect(await redis.get(`${prefix}:blob:jother:out:12345678:image.png`)).toBe('someone else');
  });

  it('a job whose parent file names climb out of the worker scratch folder is refused with a clear reason', async () => {
    const raw = new Queue(queueName(MODEL), { connection: { url: server.url }, prefix });
    const outside = path.join(dir, 'escaped.txt');
    const id = 'jhostile';
    // From <scratch>/jobs/<id>/parent, where the worker unpacks a parent, to the test's own folder.
    const name = path.relative(path.join(worker.scratchDir, 'jobs', id, 'parent'), outside);
    const key = `${prefix}:blob:${id}:in:parent:${name}`;
    await redis.set(key, 'ssh-ed25519 AAAA attacker');
    const request = {
      kind: 'repaint',
      generationId: 'g2',
      params,
      parent: { generationId: 'g1', params, artifacts: { [name]: `redis:${key}` } },
    };
    await raw.add('paint', { v: 1, userId: 'u', maxAttempts: 2, request }, { jobId: id, priority: 1 });
    expect(await worker.claim('w', 5000)).toBeUndefined();
    expect(existsSync(outside)).toBe(false);
    const bull = (await raw.getJob(id))!;
    expect(await bull.getState()).toBe('failed');
    expect(bull.failedReason).toMatch(
      /not a scenewright paint request \(request\.parent\.artifacts\..*: not a plain file name.*\)/,
    );
    await raw.close();
  });

  it('a job whose parent or mask reference names another key is refused; the worker reads nothing of it', async () => {
    const raw = new Queue(queueName(MODEL), { connection: { url: server.url }, prefix });
    await redis.set(`${prefix}:secret`, 'not for the worker');
    const parent = { generationId: 'g1', params, artifacts: { 'image.png': `redis:${prefix}:secret` } };
    await raw.add(
      'paint',
      { v: 1, userId: 'u', maxAttempts: 2, request: { kind: 'repaint', generationId: 'g2', params, parent } },
      { jobId: 'ja', priority: 1 },
    );
    const masked = { ...params, rag: { Repainting_mask: `redis:${prefix}:secret` } };
    await raw.add(
      'paint',
      { v: 1, userId: 'u', maxAttempts: 2, request: { kind: 'generate', generationId: 'g3', params: masked } },
      { jobId: 'jb', priority: 1 },
    );
    expect(await worker.claim('w', 5000)).toBeUndefined();
    for (const id of ['ja', 'jb']) {
      const bull = (await raw.getJob(id))!;
      expect(await bull.getState()).toBe('failed');
      expect(bull.failedReason).toMatch(/not a scenewright paint request .*not the queue's reference/);
    }
    expect(readdirSync(worker.scratchDir).filter((f) => f !== 'jobs')).toEqual([]);
    await raw.close();
  });

  it("cleaning up after a job deletes only that job's own keys, whatever its list in Redis names", async () => {
    await redis.set(`${prefix}:secret`, 'keep');
    const { job } = await bot.enqueue({
      userId: 'u',
      request: { kind: 'generate', generationId: 'g1', params },
      target: { userId: 'u', guildId: 'g', channelId: 'c' },
    });
    await redis.sadd(`${prefix}:blobs:${job.id}`, `${prefix}:secret`);
    expect(await bot.cancel(job.id, 'deleted by the user')).toBe('cancelled');
    expect(await redis.get(`${prefix}:secret`)).toBe('keep');
    expect(await redis.exists(`${prefix}:blobs:${job.id}`)).toBe(0);
  });

  it('the write itself refuses a name that is not a plain file name, or a reference outside the expected keys', async () => {
    const base = `${prefix}:blob:j1:in:parent`;
    await redis.set(`${base}:../x`, 'x');
    await expect(getFiles(redis, { '../x': `redis:${base}:../x` }, path.join(dir, 'in'), base)).rejects.toThrow(
      /the file name "\.\.\/x" is not a plain file name, so it was not written/,
    );
    expect(existsSync(path.join(dir, 'x'))).toBe(false);
    await expect(
      getFiles(redis, { 'image.png': `redis:${prefix}:secret` }, path.join(dir, 'in'), base),
    ).rejects.toBeInstanceOf(BlobRefusedError);
    await redis.set(`${base}:image.png`, 'png');
    const ok = await getFiles(redis, { 'image.png': `redis:${base}:image.png` }, path.join(dir, 'in'), base);
    expect(ok).toEqual({ 'image.png': path.join(dir, 'in', 'image.png') });
  });
});
