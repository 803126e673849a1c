import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/store/db.ts';
import { SqliteQueue, openQueue, makeWorkerId, type Job, type NewJob } from '../../src/queue/index.ts';

const scene = {
  width: 256,
  height: 256,
  prompt: 'a red ball',
  background: '',
  exclude: [],
  regions: [{ id: 'r1', label: 'a red ball', prompt: 'a shiny red ball', box: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 } }],
};
function newJob(user: string, n = 0): NewJob {
  return {
    userId: user,
    request: { kind: 'generate', generationId: `g${n}`, params: { scene, seed: n, steps: 2, model: 'schnell' } },
    target: {
      userId: user,
      guildId: 'g',
      channelId: 'c',
      interactionToken: 'tok',
      tokenExpiresAt: Date.now() + 60_000,
    },
  };
}
const result = {
  imagePath: '/tmp/x.png',
  artifacts: { 'image.png': '/tmp/x.png' },
  model: { id: 'flux', version: '1' },
  paintMs: 10,
};

/** A worker id that claims to be a process on this machine that has already exited. */
function deadWorkerId(): string {
  const pid = spawnSync(process.execPath, ['-e', '0']).pid!;
  return `worker@${hostname()}:${pid}:abcdef`;
}

let dir: string;
let db: Db;
let queue: SqliteQueue;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sw-queue-'));
  db = openDatabase(dir);
  queue = new SqliteQueue(db, { pollMs: 20 });
});
afterEach(async () => {
  await queue.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('embedded SQLite queue', () => {
  it('runs jobs first in, first out, with positions and states', async () => {
    const a = await queue.enqueue(newJob('u1', 1));
    const b = await queue.enqueue(newJob('u2', 2));
    const c = await queue.enqueue(newJob('u3', 3));
    expect([a.position, b.position, c.position]).toEqual([1, 2, 3]);
    const w = makeWorkerId('test');
    const first = await queue.claim(w, 10_000);
    expect(first!.id).toBe(a.job.id);
    expect(first!.status).toBe('running');
    expect(first!.attempts).toBe(1);
    expect(await queue.position(a.job.id)).toBe(0);
    expect(await queue.position(b.job.id)).toBe(1);
    expect(await queue.position(c.job.id)).toBe(2);
    expect(await queue.stats()).toMatchObject({ queued: 2, running: 1, workers: [w] });
    expect(await queue.complete(a.job.id, w, result)).toBe('done');
    const done = (await queue.get(a.job.id))!;
    expect(done.status).toBe('done');
    expect(done.result).toEqual(result);
    expect(await queue.position(a.job.id)).toBeUndefined();
    expect(await queue.complete(a.job.id, w, result)).toBe('lost');
  });

  it('validates jobs on the way in', async () => {
    await expect(
      queue.enqueue({ ...newJob('u'), request: { ...newJob('u').request, kind: 'paint' as 'generate' } }),
    ).rejects.toThrow();
  });

  it('cancels a waiting job at once and a running job through its worker', async () => {
    const a = await queue.enqueue(newJob('u', 1));
    const b = await queue.enqueue(newJob('u', 2));
    const w = makeWorkerId('test');
    await queue.claim(w, 10_000);
    expect(await queue.cancel(b.job.id, 'deleted by the user')).toBe('cancelled');
    expect((await queue.get(b.job.id))!.status).toBe('cancelled');
    expect(await queue.claim(w, 10_000)).toBeUndefined();

    expect(await queue.cancel(a.job.id, 'deleted by the user')).toBe('cancelling');
    expect(await queue.progress(a.job.id, w, { step: 1, total: 4 })).toEqual({ held: true, cancelRequested: true });
    // The worker finishes anyway: the cancel wins, no result is kept.
    expect(await queue.complete(a.job.id, w, result)).toBe('cancelled');
    const job = (await queue.get(a.job.id))!;
    expect(job.status).toBe('cancelled');
    expect(job.result).toBeNull();
    expect(job.error).toBe('deleted by the user');
    expect(await queue.cancel(a.job.id, 'again')).toBe('finished');
    expect(await queue.cancel('nope', 'x')).toBe('unknown');
  });

  it('after a restart re-queues a job whose worker died once, then fails it; never runs it twice at once', async () => {
    const { job } = await queue.enqueue(newJob('u', 1));
    const dead1 = deadWorkerId();
    await queue.claim(dead1, 60_000);
    await queue.close();

    // The bot restarts on the same file: the running job belongs to a process that is gone.
    const q2 = new SqliteQueue(db, { pollMs: 20 });
    const rec = await q2.recoverStalled();
    expect(rec.map((r) => r.outcome)).toEqual(['requeued']);
    const requeued = (await q2.get(job.id))!;
    expect(requeued.status).toBe('queued');
    expect(requeued.note).toMatch(/put back in the queue/);
    // The dead worker cannot finish it any more.
    expect(await q2.complete(job.id, dead1, result)).toBe('lost');

    const dead2 = deadWorkerId();
    const again = await q2.claim(dead2, 60_000);
    expect(again!.attempts).toBe(2);
    const rec2 = await q2.recoverStalled();
    expect(rec2.map((r) => r.outcome)).toEqual(['failed']);
    const failed = (await q2.get(job.id))!;
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/started 2 times/);
    expect(await q2.claim(makeWorkerId('x'), 1000)).toBeUndefined();
    expect(await q2.undelivered()).toHaveLength(1);
    await q2.markDelivered(job.id);
    expect(await q2.undelivered()).toHaveLength(0);
    await q2.close();
  });

  it('leaves a live worker alone until its lease runs out', async () => {
    const { job } = await queue.enqueue(newJob('u', 1));
    const w = makeWorkerId('live');
    await queue.claim(w, 60_000);
    expect(await queue.recoverStalled()).toEqual([]);
    expect(await queue.renew(job.id, w, -1)).toEqual({ held: true, cancelRequested: false });
    const rec = await queue.recoverStalled();
    expect(rec[0]!.outcome).toBe('requeued');
    expect(await queue.renew(job.id, w, 1000)).toEqual({ held: false, cancelRequested: false });
  });

  it('a cancelled job whose worker died ends cancelled, not re-queued', async () => {
    const { job } = await queue.enqueue(newJob('u', 1));
    await queue.claim(deadWorkerId(), 60_000);
    await queue.cancel(job.id, 'deleted');
    expect((await queue.recoverStalled())[0]!.outcome).toBe('cancelled');
    expect((await queue.get(job.id))!.status).toBe('cancelled');
  });

  it('abandon by the worker host re-queues once', async () => {
    const { job } = await queue.enqueue(newJob('u', 1));
    const w = makeWorkerId('host');
    await queue.claim(w, 60_000);
    expect((await queue.abandon(job.id, w, 'the worker process exited'))!.outcome).toBe('requeued');
    expect(await queue.abandon(job.id, w, 'again')).toBeUndefined();
  });

  it('counts active jobs per user and keeps the Discord target updatable', async () => {
    const a = await queue.enqueue(newJob('u', 1));
    await queue.enqueue(newJob('u', 2));
    await queue.enqueue(newJob('v', 3));
    expect((await queue.activeFor('u')).length).toBe(2);
    await queue.setTarget(a.job.id, { messageId: '555' });
    const t = (await queue.get(a.job.id))!.target;
    expect(t.messageId).toBe('555');
    expect(t.interactionToken).toBe('tok');
    await queue.cancel(a.job.id, 'x');
    expect((await queue.activeFor('u')).length).toBe(1);
  });

  it('feeds every change to subscribers, also changes made through another connection', async () => {
    const seen: Job[] = [];
    const off = queue.subscribe((j) => seen.push(j));
    const { job } = await queue.enqueue(newJob('u', 1));
    await waitFor(() => seen.some((j) => j.status === 'queued'));
    // The feed reports states, not events: changes between two looks coalesce, so step through them.
    const other = new SqliteQueue(openDatabase(dir));
    const w = makeWorkerId('other');
    await other.claim(w, 10_000);
    await other.progress(job.id, w, { step: 1, total: 2 });
    await waitFor(() => seen.some((j) => j.status === 'running' && j.progress?.step === 1));
    await other.complete(job.id, w, result);
    await waitFor(() => seen.some((j) => j.status === 'done'));
    expect(seen.at(-1)!.result).toEqual(result);
    off();
    await other.close();
  });

  it('two processes claiming from one file never get the same job', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push((await queue.enqueue(newJob(`u${i}`, i))).job.id);
    const tsx = createRequire(import.meta.url).resolve('tsx');
    const claimer = path.join(import.meta.dirname, 'claimer.ts');
    const run = () => promisify(execFile)(process.execPath, ['--import', tsx, claimer, dir]);
    const [a, b] = await Promise.all([run(), run()]);
    const got = [...(JSON.parse(a.stdout) as string[]), ...(JSON.parse(b.stdout) as string[])];
    expect(got.length).toBe(60);
    expect(new Set(got)).toEqual(new Set(ids));
  });

  it('fails every waiting job at once when nothing can run them', async () => {
    const a = await queue.enqueue(newJob('u', 1));
    const b = await queue.enqueue(newJob('v', 2));
    const w = makeWorkerId('w');
    await queue.claim(w, 10_000);
    const failed = await queue.failWaiting('the image model failed to load');
    expect(failed.map((j) => j.id)).toEqual([b.job.id]);
    expect((await queue.get(b.job.id))!.error).toBe('the image model failed to load');
    expect((await queue.get(a.job.id))!.status).toBe('running');
    await queue.enqueue(newJob('x', 3));
    await queue.enqueue(newJob('y', 4));
    expect((await queue.failWaiting('again')).length).toBe(2);
  });

  it('is what openQueue gives without REDIS_URL', async () => {
    const q = await openQueue(db);
    expect(q).toBeInstanceOf(SqliteQueue);
    await q.close();
  });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
