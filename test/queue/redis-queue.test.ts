// The BullMQ adapter against a real redis-server (started by the test on a free loopback port, AOF on).
// These tests play the worker side by hand (claim/progress/complete), so they are fast; test/cluster/
// runs real `scenewright worker` processes on the tiny checkpoint.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/store/db.ts';
import { openQueue, RedisQueue, type Job, type NewJob } from '../../src/queue/index.ts';
import { ORIGINAL_GONE, queueName } from '../../src/queue/redis-queue.ts';
import { RedisServer } from '../support/redis-server.ts';
import { WorkerHost } from '../../src/worker/host.ts';
import { TINY_SCHNELL } from './broken-checkpoint.ts';

const GATED = path.join(import.meta.dirname, 'gated-painter.ts');

const scene = {
  width: 256,
  height: 256,
  prompt: 'a red ball',
  background: '',
  exclude: [],
  regions: [{ id: 'r1', label: 'a red ball', prompt: 'a shiny red ball', box: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 } }],
};
const MODEL = 'flux.1-schnell';
function newJob(user: string, n = 0, model = MODEL): NewJob {
  return {
    userId: user,
    request: { kind: 'generate', generationId: `g${n}`, params: { scene, seed: n, steps: 2, model } },
    target: { userId: user, guildId: 'g', channelId: 'c' },
  };
}

let redis: RedisServer;
let dir: string;
let db: Db;
let bot: RedisQueue;
let workers: RedisQueue[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis?.stop();
});
beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sw-rq-'));
  db = openDatabase(dir);
  bot = await RedisQueue.open({
    url: redis.url,
    db,
    dataDir: dir,
    prefix: `t${Math.random().toString(36).slice(2, 8)}`,
    reconcileMs: 100,
  });
});
afterEach(async () => {
  await Promise.all(workers.map((w) => w.close()));
  workers = [];
  await bot.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A worker-side queue (no database, as on a GPU machine) that announced `model`. */
async function worker(id: string, model = MODEL): Promise<RedisQueue> {
  const w = await RedisQueue.open({
    url: redis.url,
    prefix: (bot as unknown as { prefix: string }).prefix,
    heartbeatMs: 200,
    stalledIntervalMs: 300,
  });
  await w.serve(id, { id: model, version: 'test' });
  workers.push(w);
  return w;
}

async function until(id: string, pred: (j: Job) => boolean, ms = 10_000): Promise<Job> {
  const end = Date.now() + ms;
  for (;;) {
    const j = (await bot.get(id))!;
    if (pred(j)) return j;
    if (Date.now() > end) throw new Error(`job ${id} stuck in ${j.status} (${j.error ?? ''})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** What a painter host leaves behind: an image and an artifact in the worker's scratch folder. */
function painted(w: RedisQueue, gen: string, tag: string) {
  const out = path.join(w.scratchDir, 'artifacts', gen);
  mkdirSync(out, { recursive: true });
  const files = { 'image.png': path.join(out, 'image.png'), 'trajectory.bin': path.join(out, 'trajectory.bin') };
  writeFileSync(files['image.png'], `png:${tag}`);
  writeFileSync(files['trajectory.bin'], Buffer.alloc(1024, tag));
  return { imagePath: files['image.png'], artifacts: files, model: { id: MODEL, version: 'test' }, paintMs: 5 };
}

async function keys(pattern: string): Promise<string[]> {
  const { Redis } = await import('ioredis');
  const c = new Redis(redis.url);
  try {
    return await c.keys(pattern);
  } finally {
    c.disconnect();
  }
}

const prefix = () => (bot as unknown as { prefix: string }).prefix;

describe('BullMQ queue on a real redis-server', () => {
  it("runs a job on a remote-style worker: result files come through Redis onto the bot's disk and leave Redis", async () => {
    const w = await worker('w1');
    const { job, position } = await bot.enqueue(newJob('u1', 1));
    expect(position).toBe(1);
    expect(job.status).toBe('queued');
    const claimed = (await w.claim('w1', 5000))!;
    expect(claimed.id).toBe(job.id);
    expect(claimed.attempts).toBe(1);
    await until(job.id, (j) => j.status === 'running');
    expect(await bot.position(job.id)).toBe(0);
    await w.progress(job.id, 'w1', { step: 1, total: 2 });
    await until(job.id, (j) => j.progress?.step === 1);
    const result = painted(w, 'g1', 'a');
    expect(await w.complete(job.id, 'w1', result)).toBe('done');
    const done = await until(job.id, (j) => j.status === 'done');
    expect(done.result!.imagePath).toBe(path.join(dir, 'artifacts', 'g1', 'image.png'));
    expect(readFileSync(done.result!.imagePath, 'utf8')).toBe('png:a');
    expect(readFileSync(done.result!.artifacts['trajectory.bin']!).length).toBe(1024);
    // Nothing of the job is left in Redis once the bot has its files; the worker's scratch copy is gone too.
    expect(await keys(`${prefix()}:blob:*`)).toEqual([]);
    expect(existsSync(path.dirname(result.imagePath))).toBe(false);
    expect(await bot.undelivered()).toHaveLength(1);
    await bot.markDelivered(job.id);
    expect(await bot.undelivered()).toHaveLength(0);
  });

  it('routes by model: a worker that serves another model never takes the job', async () => {
    const dev = await worker('dev', 'flux.1-dev');
    const schnell = await worker('schnell');
    const { job } = await bot.enqueue(newJob('u1', 1));
    expect(await dev.claim('dev', 5000)).toBeUndefined();
    expect((await schnell.claim('schnell', 5000))!.id).toBe(job.id);
    const stats = await bot.stats();
    expect(stats.models).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ model: 'flux.1-dev', workers: 1, queued: 0 }),
        expect.objectContaining({ model: MODEL, workers: 1, running: 1 }),
      ]),
    );
  });

  it('a worker still loading its model has announced it: a job sent meanwhile waits, and is painted once the model is loaded', async () => {
    const gate = path.join(dir, 'gate');
    const wq = await RedisQueue.open({ url: redis.url, prefix: prefix(), heartbeatMs: 200, stalledIntervalMs: 300 });
    workers.push(wq);
    const host = new WorkerHost({
      queue: wq,
      dataDir: wq.workDir ?? dir,
      painterModule: GATED,
      leaseMs: 5000,
      pollMs: 30,
      progressEveryMs: 0,
      painterOptions: { modelDir: TINY_SCHNELL, executionProvider: 'cpu', threads: 1, extra: { gate } },
    });
    const started = host.start();
    try {
      for (let t = Date.now(); !(await bot.stats()).models?.some((m) => m.model === MODEL && m.workers === 1);) {
        if (Date.now() - t > 30_000) throw new Error('the loading worker never announced its model');
        await new Promise((r) => setTimeout(r, 50));
      }
      const { job } = await bot.enqueue(newJob('u1', 1));
      expect(job.status).toBe('queued');
      await new Promise((r) => setTimeout(r, 1000));
      expect((await bot.get(job.id))!.status).toBe('queued');
      writeFileSync(gate, '');
      await started;
      const done = await until(job.id, (j) => j.status === 'done', 60_000);
      expect(readFileSync(done.result!.imagePath).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      writeFileSync(gate, '');
      await started.catch(() => undefined);
      await host.stop();
    }
  });

  it('a model with no live worker is failed at once with a message that names the models that have one', async () => {
    await worker('s');
    const { job } = await bot.enqueue(newJob('u1', 1, 'flux.1-dev'));
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(
      /no worker is painting flux\.1-dev right now; choose a model that has one: flux\.1-schnell \(1 worker\)/,
    );
  });

  it("is fair per user: one user's ten jobs do not hold back another user's first", async () => {
    await worker('w');
    const a: string[] = [];
    for (let i = 0; i < 10; i++) a.push((await bot.enqueue(newJob('alice', i))).job.id);
    const b = await bot.enqueue(newJob('bob', 100));
    // Alice's first job has rank 1 like Bob's; Bob's was later, so it runs right after hers, before her second.
    expect(b.position).toBe(2);
    expect(await bot.position(a[1]!)).toBe(3);
    const positions = await bot.positions([...a, b.job.id]);
    expect(positions.get(a[9]!)).toBe(11);
  });

  it("cancels a waiting job at once, and a running one through Redis on the worker's next look", async () => {
    const w = await worker('w');
    const seenByWorker: Job[] = [];
    w.subscribe((j) => seenByWorker.push(j));
    const run = await bot.enqueue(newJob('u', 1));
    const wait = await bot.enqueue(newJob('v', 2));
    await w.claim('w', 5000);
    expect(await bot.cancel(wait.job.id, 'deleted by the user')).toBe('cancelled');
    expect((await bot.get(wait.job.id))!.status).toBe('cancelled');
    expect(await bot.cancel(run.job.id, 'deleted by the user')).toBe('cancelling');
    // The pub/sub message reaches the worker's feed (the host stops the painter on it) ...
    await waitFor(() => seenByWorker.some((j) => j.id === run.job.id && j.cancelRequested));
    // ... and the lease renewal says so too.
    expect(await w.renew(run.job.id, 'w', 5000)).toEqual({ held: true, cancelRequested: true });
    expect(await w.fail(run.job.id, 'w', 'cancelled')).toBe('cancelled');
    const j = await until(run.job.id, (x) => x.status === 'cancelled');
    expect(j.error).toBe('deleted by the user');
    expect(await bot.cancel(run.job.id, 'again')).toBe('finished');
  });

  it('a job whose worker stops renewing its lock is handed to another worker once, then failed with a message', async () => {
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    const { job } = await bot.enqueue(newJob('u', 1));
    expect((await w1.claim('w1', 400))!.id).toBe(job.id);
    // w1 "dies": no renewals. BullMQ's stalled check (run by w2) puts the job back; w2 takes it.
    const again = await claimWithin(w2, 'w2', 400, 8000);
    expect(again!.id).toBe(job.id);
    expect(again!.attempts).toBe(2);
    const requeued = await until(job.id, (j) => j.attempts === 2);
    expect(requeued.status).toBe('running');
    // The first worker comes back to life: it cannot finish a job it no longer holds.
    expect(await w1.complete(job.id, 'w1', painted(w1, 'g1', 'x'))).toBe('lost');
    // w2 dies as well: the second stall marks the job, and the next worker to look fails it instead of running it.
    await until(job.id, (j) => j.status === 'queued' && j.attempts === 2, 10_000);
    expect(await claimWithin(w1, 'w1', 400, 1500)).toBeUndefined();
    const failed = await until(job.id, (j) => j.status === 'failed', 10_000);
    expect(failed.error).toMatch(
      /worker painting it stopped .* again \(it was started 2 times\), so it was stopped for good/,
    );
  });

  it('a painter crash given back by the host is re-queued once, then failed', async () => {
    const w = await worker('w');
    const { job } = await bot.enqueue(newJob('u', 1));
    await w.claim('w', 5000);
    expect((await w.abandon(job.id, 'w', 'the painting process was killed (SIGKILL) while painting'))!.outcome).toBe(
      'requeued',
    );
    const back = await until(job.id, (j) => j.status === 'queued' && j.note !== null);
    expect(back.note).toMatch(/killed \(SIGKILL\) while painting; it was put back in the queue/);
    await w.claim('w', 5000);
    expect((await w.abandon(job.id, 'w', 'the painting process was killed'))!.outcome).toBe('failed');
    expect((await until(job.id, (j) => j.status === 'failed')).error).toMatch(/started 2 times/);
  });

  it('a malformed job in Redis fails with a clear message and the worker goes on with the next', async () => {
    const w = await worker('w');
    const raw = new Queue(queueName(MODEL), { connection: { url: redis.url }, prefix: prefix() });
    const bad = await raw.add('paint', { hello: 'world' }, { priority: 1 });
    const { job } = await bot.enqueue(newJob('u', 1));
    const got = await w.claim('w', 5000);
    expect(got!.id).toBe(job.id);
    const failed = (await raw.getJob(bad.id!))!;
    expect(await failed.getState()).toBe('failed');
    expect(failed.failedReason).toMatch(
      /the job's data in Redis is not a scenewright paint request \(v: .*\); it was written by hand or by an incompatible version/,
    );
    await raw.close();
  });

  it('a repaint carries its parent through Redis; an expired parent fails with the "original is gone" message', async () => {
    const w = await worker('w');
    const parentDir = path.join(dir, 'artifacts', 'g0');
    mkdirSync(parentDir, { recursive: true });
    const parent = {
      'image.png': path.join(parentDir, 'image.png'),
      'trajectory.bin': path.join(parentDir, 'trajectory.bin'),
    };
    writeFileSync(parent['image.png'], 'parent png');
    writeFileSync(parent['trajectory.bin'], Buffer.alloc(4096, 7));
    const repaint = (n: number): NewJob => ({
      ...newJob('u', n),
      request: {
        kind: 'repaint',
        generationId: `g${n}`,
        params: { scene, seed: 0, steps: 2, model: MODEL },
        parent: { generationId: 'g0', params: { scene, seed: 0, steps: 2, model: MODEL }, artifacts: parent },
      },
    });
    const ok = await bot.enqueue(repaint(1));
    const got = (await w.claim('w', 5000))!;
    expect(got.id).toBe(ok.job.id);
    // The worker sees files on its own disk, with the parent's bytes.
    const files = got.request.parent!.artifacts;
    expect(files['image.png']!.startsWith(w.scratchDir)).toBe(true);
    expect(readFileSync(files['trajectory.bin']!)).toEqual(readFileSync(parent['trajectory.bin']));
    await w.fail(got.id, 'w', 'test over');

    const gone = await bot.enqueue(repaint(2));
    for (const k of await keys(`${prefix()}:blob:${gone.job.id}:*`)) {
      const { Redis } = await import('ioredis');
      const c = new Redis(redis.url);
      await c.del(k);
      c.disconnect();
    }
    expect(await w.claim('w', 5000)).toBeUndefined();
    const failed = await until(gone.job.id, (j) => j.status === 'failed');
    expect(failed.error).toBe(ORIGINAL_GONE);
  });

  it('loses no job when Redis is killed and restarted on its AOF; bot and worker reconnect', async () => {
    const w = await worker('w');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await bot.enqueue(newJob(`u${i}`, i))).job.id);
    await redis.restart();
    const done: string[] = [];
    for (let i = 0; i < 5; i++) {
      const j = await claimWithin(w, 'w', 5000, 15_000);
      expect(await w.complete(j!.id, 'w', painted(w, j!.generationId, 'r'))).toBe('done');
      done.push(j!.id);
    }
    expect(done.sort()).toEqual([...ids].sort());
    for (const id of ids) await until(id, (j) => j.status === 'done', 15_000);
  });

  it('a bot that restarts collects results that finished while it was away, once', async () => {
    const w = await worker('w');
    const { job } = await bot.enqueue(newJob('u', 1));
    await w.claim('w', 5000);
    await bot.close();
    expect(await w.complete(job.id, 'w', painted(w, 'g1', 'later'))).toBe('done');
    bot = await RedisQueue.open({ url: redis.url, db, dataDir: dir, prefix: w['prefix'], reconcileMs: 100 });
    const seen: Job[] = [];
    bot.subscribe((j) => seen.push(j));
    const done = await until(job.id, (j) => j.status === 'done');
    expect(readFileSync(done.result!.imagePath, 'utf8')).toBe('png:later');
    await new Promise((r) => setTimeout(r, 400));
    expect(seen.filter((j) => j.id === job.id && j.status === 'done')).toHaveLength(1);
  });

  it('refuses a Redis that evicts keys, saying what to set', async () => {
    const lru = await RedisServer.start({ maxmemoryPolicy: 'allkeys-lru' });
    try {
      await expect(openQueue(db, { redisUrl: lru.url })).rejects.toThrow(
        /maxmemory-policy allkeys-lru.*BullMQ needs "maxmemory-policy noeviction"/s,
      );
    } finally {
      await lru.stop();
    }
  });
});

async function claimWithin(w: RedisQueue, id: string, leaseMs: number, ms: number): Promise<Job | undefined> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const j = await w.claim(id, leaseMs);
    if (j) return j;
  }
  return undefined;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
