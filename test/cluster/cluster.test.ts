// The bot (`scenewright bot` mode: no embedded worker, no MODEL_DIR) and real `scenewright worker` processes on
// the tiny checkpoint, against one real redis-server: the workers share nothing with the bot but Redis (no DATA_DIR,
// no SQLite file). Three schnell workers and one dev worker that must never take a schnell job.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readRgb8, repaintPixels } from '../../src/engine/pipeline/image.ts';
import { queueName } from '../../src/queue/redis-queue.ts';
import type { Job } from '../../src/queue/schema.ts';
import { Harness, TINY_MODEL } from '../bot/harness.ts';
import type { ApiMessage, ApiUser } from '../support/fake-discord/index.ts';
import { fixture } from '../support/fixtures.ts';
import { RedisServer } from '../support/redis-server.ts';
import { isOf, startWorker, stopWorker, type WorkerProcess } from './workers.ts';

const SCHNELL = 'flux.1-schnell';
let redis: RedisServer;
let schnell: WorkerProcess[] = [];
let dev: WorkerProcess;
let h: Harness | undefined;

async function liveWorkers(model: string, n: number): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    const stats = await h!.bot.queue.stats();
    if ((stats.models?.find((m) => m.model === model)?.workers ?? 0) >= n) return;
    if (Date.now() > end) throw new Error(`only ${JSON.stringify(stats.models)} workers came up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  redis = await RedisServer.start();
  schnell = [0, 1, 2].map(() => startWorker(redis.url, TINY_MODEL, SCHNELL));
  dev = startWorker(redis.url, fixture('tiny-flux-dev'), 'flux.1-dev');
});
afterAll(async () => {
  await Promise.all([...schnell, dev].filter(Boolean).map((w) => stopWorker(w)));
  await redis?.stop();
});
afterEach(async () => {
  // Leave the workers idle for the next scenario: whatever this one left running is cancelled.
  const open = (h?.bot.store.db.prepare(`SELECT id FROM redis_jobs WHERE status IN ('queued', 'running')`).all() ??
    []) as { id: string }[];
  for (const { id } of open) await h!.bot.queue.cancel(id, 'test over');
  await h?.close();
  h = undefined;
});

/**
 * The bot on Redis as the README's "Several GPU machines" sets it up: `scenewright bot` with no MODEL_DIR (it
 * learns the models from the workers); small images so the scenarios are about the queue, not the picture.
 */
async function start(env: Record<string, string> = {}, fake = {}): Promise<Harness> {
  h = await Harness.start({
    painter: 'none',
    embeddedWorker: false,
    fake,
    env: {
      REDIS_URL: redis.url,
      MIN_SIZE: '128',
      DEFAULT_SIZE: '128',
      USER_MAX_CONCURRENT_JOBS: '10',
      WORKER_LEASE_SECONDS: '2',
      MAX_STEPS: '100',
      ...env,
    },
  });
  await liveWorkers(SCHNELL, schnell.length);
  // The bot picks the default model from the served models it last looked at (every 2 s): until that look has
  // seen the schnell workers, an /imagine without a model goes to the dev worker if it announced first.
  const end = Date.now() + 10_000;
  while (!h.bot.painting.served?.includes(SCHNELL)) {
    if (Date.now() > end) throw new Error(`the bot sees only ${JSON.stringify(h.bot.painting.served)} served`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return h;
}

async function jobOf(message: ApiMessage): Promise<Job> {
  const g = h!.bot.store.generationForMessage(message.id)!;
  return (await h!.bot.queue.get(g.jobId!))!;
}

/** Requests that put a finished image on a message (its ✅ text), by message path. */
function finals(): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of h!.fake.requests) {
    const body = r.body as { content?: string } | undefined;
    if ((r.method === 'PATCH' || r.method === 'POST') && r.status < 300 && body?.content?.startsWith('✅'))
      out.set(r.path, (out.get(r.path) ?? 0) + 1);
  }
  return out;
}

async function waitJob(id: string, pred: (j: Job) => boolean, ms = 60_000): Promise<Job> {
  const end = Date.now() + ms;
  for (;;) {
    const j = await h!.bot.queue.get(id);
    if (j && pred(j)) return j;
    if (Date.now() > end) throw new Error(`job ${id} is ${j?.status} (${j?.error ?? ''})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('a bot and worker processes on other "machines" through Redis', () => {
  it('30 jobs from 10 users, repaints among them, on three workers: each done and delivered exactly once; repaints keep their parent outside the mask', async () => {
    await start();
    const users: ApiUser[] = Array.from({ length: 10 }, (_, i) => h!.fake.join(h!.guildId, `painter${i}`));
    const firsts = await Promise.all(
      users.flatMap((u, i) =>
        [0, 1].map((k) =>
          h!.imagine(u, 'a black cat on the left and a white dog on the right', { steps: 2, seed: i * 10 + k }),
        ),
      ),
    );
    const done = await Promise.all(firsts.map(({ message }) => h!.finished(message.id, 120_000)));
    expect(done.every((m) => m.content.startsWith('✅'))).toBe(true);
    const repaints = await Promise.all(
      users.map(async (u, i) => {
        const reply = h!.fake.userMessage(u, h!.channel.id, 'make the cat orange', { replyTo: done[i * 2]!.id });
        const answer = await h!.replyTo(reply.id);
        return h!.finished(answer.id, 120_000);
      }),
    );
    expect(repaints.every((m) => m.content.startsWith('✅ Repainted'))).toBe(true);

    // Marked delivered right after the final edit returns.
    const jobs = await Promise.all(
      [...done, ...repaints].map(async (m) => waitJob((await jobOf(m)).id, (j) => j.deliveredAt !== null)),
    );
    expect(jobs).toHaveLength(30);
    // Each ran once, on a schnell worker; the dev worker never took one; the work was spread.
    expect(jobs.map((j) => `${j.status}:${j.attempts}`)).toEqual(jobs.map(() => 'done:1'));
    const schnellPids = schnell.map((w) => w.pid);
    expect(
      jobs.filter((j) => !schnell.some((w) => isOf(w, j.workerId))).map((j) => `${j.id}: ${j.workerId}`),
      `schnell workers ${schnellPids.join(', ')}`,
    ).toEqual([]);
    expect(jobs.some((j) => isOf(dev, j.workerId))).toBe(false);
    expect(new Set(jobs.map((j) => j.workerId)).size).toBeGreaterThanOrEqual(2);
    // Each result reached Discord exactly once.
    const shown = finals();
    expect(shown.size).toBe(30);
    expect([...shown.values()].every((n) => n === 1)).toBe(true);

    for (const m of repaints) {
      const g2 = h!.bot.store.generationForMessage(m.id)!;
      const g1 = h!.bot.store.getGeneration(g2.parentId!)!;
      const [a, b] = await Promise.all([readRgb8(g1.artifacts['image.png']!), readRgb8(g2.artifacts['image.png']!)]);
      const area = await repaintPixels(g2.artifacts['mask.png']!, a.width, a.height);
      let outside = 0;
      for (let p = 0; p < area.length; p++) {
        if (area[p]) continue;
        for (let c = 0; c < 3; c++) outside = Math.max(outside, Math.abs(a.data[p * 3 + c]! - b.data[p * 3 + c]!));
      }
      expect(outside).toBe(0);
    }
    // Nothing is left in Redis: the bot deleted every file once it had stored it.
    const client = new Redis(redis.url);
    expect(await client.keys('sw:blob:*')).toEqual([]);
    client.disconnect();
  });

  it('six jobs on three workers in one rate-limited channel: progress and place edits give way, each image arrives within one rate-limit window of finishing', async () => {
    const windowMs = 5000;
    await start({ DEFAULT_SIZE: '512' }, { rateLimit: { writes: 5, windowMs } });
    const users = Array.from({ length: 6 }, (_, i) => h!.fake.join(h!.guildId, `busy${i}`));
    // Step counts spread the finishes over a few seconds, as real jobs do (six images finishing in the same instant
    // would need six writes in a window that allows five).
    const started = await Promise.all(
      users.map((u, i) => h!.imagine(u, `a green tree number ${i}`, { steps: 8 + 8 * i, seed: i }, h!.channel)),
    );
    const done = await Promise.all(started.map(({ message }) => h!.finished(message.id, 120_000)));
    expect(done.every((m) => m.content.startsWith('✅'))).toBe(true);
    const writes = h!.fake.requests.filter(
      (r) => r.method !== 'GET' && /\/(webhooks\/\d+\/[^/]+\/messages|channels\/\d+\/messages)/.test(r.path),
    );
    // Discord's limit was reached (the fake answered 429 the way Discord does) ...
    const limited = writes.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.response).toMatchObject({ retry_after: expect.any(Number), global: false });
    for (const { message } of started) {
      const job = await jobOf(message);
      const final = writes.find(
        (r) =>
          r.status < 300 &&
          (r.body as { content?: string })?.content?.startsWith('✅') &&
          r.path.includes(started.find((s) => s.message.id === message.id)!.ix.token),
      );
      // ... yet every finished image went out within one window of the job finishing, ahead of any progress.
      expect(final!.at - job.finishedAt!).toBeLessThan(windowMs + 1500);
      const waits = writes.filter(
        (r) =>
          r.status < 300 &&
          r.path.includes(started.find((s) => s.message.id === message.id)!.ix.token) &&
          (r.body as { content?: string })?.content?.startsWith('⏳ Waiting'),
      );
      for (let i = 1; i < waits.length; i++) expect(waits[i]!.at - waits[i - 1]!.at).toBeGreaterThanOrEqual(5000 - 50);
    }
  });

  it("/queue shows the caller's places and the workers of each model across the cluster", async () => {
    // 1024²: a warm worker paints a 512² step in ≈ 20 ms, too fast for the queue to be seen moving.
    await start({ DEFAULT_SIZE: '1024' });
    // Three long jobs keep the three schnell workers busy; the fourth and fifth wait.
    // (In another channel: this one's write budget is for the waiting jobs' messages.)
    // Long enough that none ends by itself before the test cancels one (the painter is warm: steps are fast).
    const long = await Promise.all(
      [0, 1, 2].map((i) =>
        h!.imagine(h!.fake.join(h!.guildId, `long${i}`), 'a castle on a hill', { steps: 100, seed: i }, h!.nsfwChannel),
      ),
    );
    for (const { message } of long) {
      const g = await h!.fake.waitFor(() => h!.bot.store.generationForMessage(message.id), 'the generation');
      await waitJob(g.jobId!, (j) => j.status === 'running');
    }
    await h!.imagine(h!.users.bob, 'a fox', { steps: 100 });
    await h!.imagine(h!.users.alice, 'a hare', { steps: 2 });
    const answer = await h!.answered(h!.fake.slashCommand(h!.users.alice, h!.channel.id, 'queue'));
    expect(answer.content).toMatch(/3 painting, 2 waiting/);
    expect(answer.content).toMatch(/flux\.1-schnell: 3 workers, 3 painting, 2 waiting/);
    expect(answer.content).toMatch(/flux\.1-dev: 1 worker, 0 painting, 0 waiting/);
    expect(answer.content).toMatch(/“a hare”: position 2 in the queue/);
    // The queue moves (one long job is deleted, the fox starts): the hare's message shows its new place.
    const hare = [...h!.fake.messages.values()].find((m) => m.content.includes('a hare'))!;
    const first = h!.bot.store.generationForMessage(long[0]!.message.id)!;
    await h!.bot.queue.cancel(first.jobId!, 'test over');
    await h!.fake.waitFor(
      () => /^⏳ Waiting to paint “a hare”: next in the queue/.test(h!.fake.messages.get(hare.id)?.content ?? ''),
      'the new place on the hare message',
      20_000,
    );
  });

  it('a worker process SIGKILLed mid-job: the job finishes on another worker and is delivered once', async () => {
    await start({ DEFAULT_SIZE: '512' });
    const { message } = await h!.imagine(h!.users.alice, 'a red apple next to a green pear', { steps: 24 });
    const g = await h!.fake.waitFor(() => h!.bot.store.generationForMessage(message.id), 'the generation');
    const running = await waitJob(g.jobId!, (j) => j.status === 'running' && (j.progress?.step ?? 0) >= 1);
    const victim = schnell.find((w) => isOf(w, running.workerId))!;
    await stopWorker(victim, 'SIGKILL');
    const requeued = await waitJob(g.jobId!, (j) => j.attempts === 2, 30_000);
    const done = await h!.finished(message.id, 120_000);
    expect(done.content).toMatch(/^✅/);
    const job = await waitJob(g.jobId!, (j) => j.deliveredAt !== null);
    expect(job.attempts).toBe(2);
    expect(isOf(victim, job.workerId)).toBe(false);
    expect(requeued.note ?? job.note ?? '').toMatch(/put back in the queue/);
    expect([...finals().values()]).toEqual([1]);
    // A replacement for the next tests.
    schnell = [...schnell.filter((w) => w !== victim), startWorker(redis.url, TINY_MODEL, SCHNELL)];
  });

  it('Delete while a remote worker paints: the cancel reaches it through Redis and it stops within a step', async () => {
    await start({ DEFAULT_SIZE: '1024' });
    const { message } = await h!.imagine(h!.users.alice, 'a lighthouse on a cliff', { steps: 100 });
    const g = await h!.fake.waitFor(() => h!.bot.store.generationForMessage(message.id), 'the generation');
    await waitJob(g.jobId!, (j) => j.status === 'running' && (j.progress?.step ?? 0) >= 2);
    // Progress and a preview from the remote worker reach the message, no more often than the throttle.
    const shownPainting = await h!.fake.waitFor(
      () => {
        const m = h!.fake.messages.get(message.id);
        return m && /step \d+\/100/.test(m.content) && m.attachments.some((a) => a.filename.includes('preview'))
          ? m
          : undefined;
      },
      'progress with a preview',
      40_000,
    );
    const edits = h!.fake.requests.filter(
      (r) => r.method === 'PATCH' && /step \d+\/100/.test((r.body as { content?: string })?.content ?? ''),
    );
    for (let i = 1; i < edits.length; i++) expect(edits[i]!.at - edits[i - 1]!.at).toBeGreaterThanOrEqual(200 - 20);
    const clicked = Date.now();
    h!.fake.clickButton(h!.users.alice, shownPainting.id, `delete:${g.id}`);
    const cancelled = await waitJob(g.jobId!, (j) => j.status === 'cancelled', 15_000);
    // One 1024² step of the tiny model takes well under a second on two cores.
    expect(cancelled.finishedAt! - clicked).toBeLessThan(3000);
    expect(cancelled.progress?.step ?? 0).toBeLessThan(100);
    await h!.fake.waitFor(() => !h!.fake.messages.has(message.id), 'the message to be deleted');
    expect(h!.bot.store.getGeneration(g.id)!.status).toBe('cancelled');
  });

  it('Redis killed and restarted on its AOF mid-run: no job lost, each delivered once', async () => {
    await start();
    const started = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((i) => h!.imagine(h!.users.bob, `a blue boat number ${i}`, { steps: 2, seed: i })),
    );
    const lines = (w: WorkerProcess, re: RegExp) =>
      w.output
        .join('')
        .split('\n')
        .filter((l) => re.test(l)).length;
    const before = schnell.map((w) => lines(w, /Redis is unreachable/));
    await redis.kill();
    await new Promise((r) => setTimeout(r, 800));
    await redis.launch();
    const done = await Promise.all(started.map(({ message }) => h!.finished(message.id, 90_000)));
    expect(done.every((m) => m.content.startsWith('✅'))).toBe(true);
    expect([...finals().values()].filter((n) => n === 1)).toHaveLength(6);
    // Each worker said so once (however many of its connections noticed), and once that it is back.
    await h!.fake.waitFor(
      () => schnell.every((w) => lines(w, /Redis is reachable again/) >= 1),
      'the workers to log the reconnect',
    );
    expect(schnell.map((w, i) => lines(w, /Redis is unreachable/) - before[i]!)).toEqual(schnell.map(() => 1));
    expect(schnell.map((w) => lines(w, /worker loop error/))).toEqual(schnell.map(() => 0));
  });

  it("npm start with REDIS_URL: the bot's own painter is one more worker of the cluster", async () => {
    h = await Harness.start({
      painter: 'engine',
      env: { REDIS_URL: redis.url, MIN_SIZE: '128', DEFAULT_SIZE: '128', WORKER_LEASE_SECONDS: '2' },
    });
    await liveWorkers(SCHNELL, schnell.length + 1);
    expect(h.bot.host!.info!.id).toBe(SCHNELL);
    const { message } = await h.imagine(h.users.alice, 'a white swan', { steps: 2 });
    expect((await h.finished(message.id, 30_000)).content).toMatch(/^✅/);
  });

  it('a model whose workers are all gone is said at once, naming the models that have workers', async () => {
    await start();
    await stopWorker(dev);
    const end = Date.now() + 10_000;
    while ((await h!.bot.queue.stats()).models?.find((m) => m.model === 'flux.1-dev')?.workers && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    const { message } = await h!.imagine(h!.users.alice, 'a night sky', { model: 'flux.1-dev', steps: 2 });
    const done = await h!.finished(message.id, 10_000);
    expect(done.content).toMatch(
      /^⚠️ I could not paint “a night sky”: no worker is painting flux\.1-dev right now; choose a model that has one: flux\.1-schnell \(3 workers\)/,
    );
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('the bot restarts while a job paints: the result that finished meanwhile is delivered once when it is back', async () => {
    await start({ DEFAULT_SIZE: '256' });
    const { message } = await h!.imagine(h!.users.alice, 'a yellow kite in the sky', { steps: 6 });
    const g = await h!.fake.waitFor(() => h!.bot.store.generationForMessage(message.id), 'the generation');
    await waitJob(g.jobId!, (j) => j.status === 'running');
    await h!.bot.stop();
    h!.fake.disconnectAll();
    const raw = new Queue(queueName(SCHNELL), { connection: { url: redis.url }, prefix: 'sw' });
    const end = Date.now() + 60_000;
    while ((await raw.getJobState(g.jobId!)) !== 'completed' && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
    expect(await raw.getJobState(g.jobId!)).toBe('completed');
    await raw.close();
    await h!.startBot();
    const done = await h!.finished(message.id, 30_000);
    expect(done.content).toMatch(/^✅/);
    await new Promise((r) => setTimeout(r, 600));
    expect([...finals().values()]).toEqual([1]);
  });
});
