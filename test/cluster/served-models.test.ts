// The README's "Several GPU machines": MODEL_DIR only on the machines that paint. The bot (`scenewright bot` with
// REDIS_URL and no MODEL_DIR) learns from the workers' announcements which models they paint; a real
// redis-server, a real `scenewright worker` process on the tiny dev checkpoint, the fake Discord.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from '../bot/harness.ts';
import { fixture } from '../support/fixtures.ts';
import { RedisServer } from '../support/redis-server.ts';
import { isOf, startWorker, stopWorker, type WorkerProcess } from './workers.ts';

let redis: RedisServer;
let dev: WorkerProcess;
let h: Harness | undefined;

beforeAll(async () => {
  redis = await RedisServer.start();
  dev = startWorker(redis.url, fixture('tiny-flux-dev'), 'flux.1-dev');
});
afterAll(async () => {
  await h?.close();
  if (dev) await stopWorker(dev);
  await redis?.stop();
});

describe('a bot without MODEL_DIR in front of workers on other machines', () => {
  it('paints with the model its workers announce (dev here) when the user names none; with no worker alive it says so at once', async () => {
    h = await Harness.start({
      painter: 'none',
      embeddedWorker: false,
      env: { REDIS_URL: redis.url, MIN_SIZE: '128', DEFAULT_SIZE: '128', WORKER_LEASE_SECONDS: '2' },
    });
    expect(h.config.model.dir).toBeUndefined();
    expect(h.bot.painting.mode).toBe('external');
    await h.fake.waitFor(() => h!.bot.painting.served?.includes('flux.1-dev'), "the worker's model", 60_000);

    const { message } = await h.imagine(h.users.alice, 'a night sky over a lake', { steps: 2 });
    const done = await h.finished(message.id, 60_000);
    expect(done.content).toMatch(/^✅/);
    const g = h.bot.store.generationForMessage(message.id)!;
    expect(g.params.model).toBe('flux.1-dev');
    expect(isOf(dev, (await h.bot.queue.get(g.jobId!))!.workerId)).toBe(true);

    await stopWorker(dev);
    await h.fake.waitFor(() => h!.bot.painting.served?.length === 0, 'the bot to see the worker gone', 15_000);
    const t0 = Date.now();
    const second = await h.imagine(h.users.bob, 'a red barn', { steps: 2 });
    const refused = await h.finished(second.message.id, 10_000);
    expect(refused.content).toMatch(
      /^⚠️ I could not paint “a red barn”: no worker is painting flux\.1-schnell right now; the bot’s operator has to start a worker for it/,
    );
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
