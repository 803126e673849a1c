// Styles across machines: the bot (no MODEL_DIR, its own LORA_DIR) pins each style's SHA-256; a real
// `scenewright worker` process on Redis resolves the style in ITS OWN LORA_DIR (a synced copy at another path) and
// checks the hash; a worker lacking the style, or holding another version of it, fails the job naming the style.
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Harness, TINY_MODEL } from '../bot/harness.ts';
import { writeStyleFile } from '../bot/style-files.ts';
import { RedisServer } from '../support/redis-server.ts';
import { startWorker, stopWorker, type WorkerProcess } from './workers.ts';

let redis: RedisServer | undefined;
let worker: WorkerProcess | undefined;
let h: Harness | undefined;
const tmp = mkdtempSync(path.join(tmpdir(), 'sw-cluster-styles-'));
const botStyles = path.join(tmp, 'bot-styles');
writeStyleFile(botStyles, 'watercolor', { tags: { 'wc style': 3 } });

afterAll(() => rmSync(tmp, { recursive: true, force: true }));
async function stopCluster(): Promise<void> {
  await h?.close();
  h = undefined;
  if (worker) await stopWorker(worker);
  worker = undefined;
  await redis?.stop();
  redis = undefined;
}
afterEach(stopCluster);

/** A fresh Redis each time, so that "a worker is up" cannot be the announcement of the one stopped before. */
async function cluster(workerStyles: string): Promise<Harness> {
  redis = await RedisServer.start();
  worker = startWorker(redis.url, TINY_MODEL, 'flux.1-schnell', { LORA_DIR: workerStyles });
  h = await Harness.start({
    painter: 'none',
    embeddedWorker: false,
    env: { REDIS_URL: redis.url, MIN_SIZE: '128', DEFAULT_SIZE: '128', WORKER_LEASE_SECONDS: '2', LORA_DIR: botStyles },
  });
  const end = Date.now() + 60_000;
  while (!(await h.bot.queue.stats()).models?.some((m) => m.workers > 0)) {
    if (Date.now() > end) throw new Error('the worker did not come up');
    await new Promise((r) => setTimeout(r, 100));
  }
  return h;
}

describe('styles on remote workers', () => {
  it('a worker with the same files in its own LORA_DIR paints the style', async () => {
    const synced = path.join(tmp, 'synced');
    cpSync(botStyles, synced, { recursive: true });
    h = await cluster(synced);
    const paint = async (o: Record<string, string | number>) => {
      const { message } = await h!.imagine(h!.users.alice, 'a cat', { steps: 1, seed: 7, ...o });
      return h!.finished(message.id, 120_000);
    };
    const done = await paint({ style: 'watercolor', style_scale: 2 });
    expect(done.content).toMatch(/^✅[\s\S]*Styles: watercolor ×2 \(whole picture\)/);
    const g = h.bot.store.generationForMessage(done.id)!;
    const file = readFileSync(path.join(botStyles, 'watercolor.safetensors'));
    expect(g.params.passes![0]!.loras![0]).toMatchObject({
      name: 'watercolor',
      sha256: createHash('sha256').update(file).digest('hex'),
    });
    // The worker applied it: the same seed without the style paints other pixels.
    const plain = await paint({});
    expect(plain.content).toMatch(/^✅/);
    const bytes = (m: typeof done) => h!.fake.attachmentBytes(m.attachments[0]!);
    expect(bytes(done).equals(bytes(plain))).toBe(false);
  });

  it('a worker without the style, or with another file under its name, fails the job and says which style', async () => {
    const lacking = path.join(tmp, 'lacking');
    writeStyleFile(lacking, 'ink');
    h = await cluster(lacking);
    const a = await h.imagine(h.users.alice, 'a cat', { steps: 1, style: 'watercolor' });
    const failed = await h.finished(a.message.id, 60_000);
    expect(failed.content).toMatch(/^⚠️ I could not paint[\s\S]*cannot paint the style "watercolor"/);
    await stopCluster();

    const differs = path.join(tmp, 'differs');
    writeStyleFile(differs, 'watercolor', { seed: 42 });
    h = await cluster(differs);
    const b = await h.imagine(h.users.alice, 'a dog', { steps: 1, style: 'watercolor' });
    const failed2 = await h.finished(b.message.id, 60_000);
    expect(failed2.content).toMatch(/^⚠️/);
    expect(h.bot.store.generationForMessage(failed2.id)!.error).toMatch(
      /file for the style "watercolor" .* differs from the one the request was made with/,
    );
  });
});
