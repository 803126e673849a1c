// The bot with the engine's painter in its embedded worker, on the tiny FLUX checkpoint: /imagine to a
// finished image with buttons, replies that repaint, Reroll, Delete while running, restarts, a killed worker,
// expired tokens, many users at once, and the engine's own failures (a broken checkpoint) reaching the user.
// Step time grows with the image size, so the scenarios that interrupt a job paint larger images with more
// steps, and those that only need many or quick paintings use small ones.
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness, type HarnessOptions } from './harness.ts';
import { brokenCheckpoint, type BrokenCheckpoint } from '../queue/broken-checkpoint.ts';
import { openDatabase } from '../../src/store/db.ts';
import { SqliteQueue } from '../../src/queue/index.ts';
import { WorkerHost } from '../../src/worker/host.ts';
import { ENGINE_PAINTER_MODULE } from '../../src/worker/painter.ts';
import type { ApiMessage } from '../support/fake-discord/index.ts';

let h: Harness | undefined;
let broken: BrokenCheckpoint | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  broken?.remove();
  broken = undefined;
});

/** Small, one-step paintings for scenarios about the bot and the queue rather than the picture. */
const QUICK = { MIN_SIZE: '128', DEFAULT_SIZE: '128' };

const steps = 2;

async function imageOf(
  message: ApiMessage,
): Promise<{ format?: string; width?: number; height?: number; bytes: Buffer }> {
  if (!h) throw new Error('no harness');
  const att = message.attachments[0];
  if (!att) throw new Error(`message has no attachment: ${message.content}`);
  const bytes = h.fake.attachmentBytes(att);
  const meta = await sharp(bytes).metadata();
  return { format: meta.format, width: meta.width, height: meta.height, bytes };
}

describe('painting with the engine on the tiny checkpoint', () => {
  const start = (o: HarnessOptions = {}) => Harness.start({ painter: 'engine', ...o });

  it('/imagine: deferred within 3 s, layout and queue position, progress, then the image with its four buttons', async () => {
    h = await start();
    const { ix, message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right', {
      steps,
      seed: 7,
    });
    expect(ix.ackType).toBe(5);
    expect(ix.ackMs).toBeLessThan(3000);
    // The first answer (later edits replace it quickly): the layout and the place in the queue.
    const first = h.fake.requestsTo('PATCH', new RegExp(`/webhooks/\\d+/${ix.token}/messages/@original$`))[0]!;
    expect((first.body as { content: string }).content).toMatch(
      /Layout for[\s\S]*Queued: (next in the queue|position \d+)/,
    );
    expect(first.files[0]!.filename).toMatch(/^layout-.*\.png$/);
    const done = await h.finished(message.id, 120_000);
    expect(done.content).toMatch(/^✅/);
    expect(done.content).toMatch(/seed 7/);
    const img = await imageOf(done);
    expect(img.format).toBe('png');
    expect([img.width, img.height]).toEqual([512, 512]);
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(h.buttons(done)).toEqual([
      `reroll:${g.id}`,
      `layout:${g.id}`,
      `edit:${g.id}`,
      `history:${g.id}`,
      `delete:${g.id}`,
    ]);
    expect(g).toMatchObject({ status: 'done', kind: 'generate' });
    expect(g.modelId).toBe(h.bot.painting.info!.id);
    expect(g.params.rag).toMatchObject({ seed: 7, num_inference_steps: steps, width: 512, height: 512 });
    expect(g.timings.paint).toBeGreaterThan(0);
    expect(g.artifacts['image.png']).toBeDefined();
    // Every edit of this message went through the interaction token, none through the bot token.
    const edits = h.fake.requestsTo('PATCH', new RegExp(`/webhooks/\\d+/${ix.token}/messages/@original$`));
    expect(edits.length).toBeGreaterThanOrEqual(2);
  });

  it('a reply repaints the named region and answers with a new message replying to the user; a reply to that result works too', async () => {
    h = await start();
    const { message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right', {
      steps,
    });
    const first = await h.finished(message.id, 120_000);
    const g1 = h.bot.store.generationForMessage(first.id)!;

    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the cat orange', { replyTo: first.id });
    const answer = await h.replyTo(reply.id);
    expect(answer.message_reference).toMatchObject({ message_id: reply.id, type: 0 });
    const repainted = await h.finished(answer.id, 120_000);
    expect(repainted.content).toMatch(/^✅ Repainted/);
    expect((await imageOf(repainted)).format).toBe('png');
    const g2 = h.bot.store.generationForMessage(repainted.id)!;
    expect(g2).toMatchObject({ kind: 'repaint', parentId: g1.id, status: 'done' });
    expect(g2.params.seed).toBe(g1.params.seed);
    expect(g2.params.repaint!.regions.length).toBe(1);
    expect(g2.artifacts['mask.png']).toBeDefined();
    expect((g2.params.rag as { Repainting_mask?: string }).Repainting_mask).toBe(g2.artifacts['mask.png']);
    expect(h.buttons(repainted)).toContain(`reroll:${g2.id}`);

    const reply2 = h.fake.userMessage(h.users.alice, h.channel.id, 'make the dog brown', { replyTo: repainted.id });
    const answer2 = await h.replyTo(reply2.id);
    const again = await h.finished(answer2.id, 120_000);
    const g3 = h.bot.store.generationForMessage(again.id)!;
    expect(g3).toMatchObject({ kind: 'repaint', parentId: g2.id, status: 'done' });
    expect(h.bot.store.lineage(g3.id).map((g) => g.id)).toEqual([g3.id, g2.id, g1.id]);
  });

  it('Reroll paints the same layout with a new seed, also after the bot restarted', async () => {
    h = await start();
    const { message } = await h.imagine(h.users.alice, 'a red apple next to a green pear', { steps });
    const done = await h.finished(message.id, 120_000);
    const g = h.bot.store.generationForMessage(done.id)!;
    await h.restartBot();
    const ix = h.fake.clickButton(h.users.alice, done.id, `reroll:${g.id}`);
    const answer = await h.answered(ix);
    const firstEdit = h.fake.requestsTo('PATCH', new RegExp(`/webhooks/\\d+/${ix.token}/messages/@original$`))[0]!;
    expect((firstEdit.body as { content: string }).content).toMatch(/New seed/);
    const rerolled = await h.finished(answer.id, 120_000);
    const g2 = h.bot.store.generationForMessage(rerolled.id)!;
    expect(g2.parentId).toBe(g.id);
    expect(g2.params.scene).toEqual(g.params.scene);
    expect(g2.params.seed).not.toBe(g.params.seed);
  });
  it('Delete while painting cancels the job and removes the message; the next job still runs', async () => {
    h = await start();
    const { message } = await h.imagine(h.users.alice, 'a castle on a hill', { steps: 50 });
    const g = h.bot.store.generationForMessage(message.id)!;
    await waitForJob(g.jobId!, (j) => j.status === 'running' && (j.progress?.step ?? 0) >= 1, 120_000);
    h.fake.clickButton(h.users.alice, message.id, `delete:${g.id}`);
    await h.fake.waitFor(() => !h!.fake.messages.has(message.id), 'the message to go');
    const job = await waitForJob(g.jobId!, (j) => j.status !== 'running');
    expect(job.status).toBe('cancelled');
    await h.fake.waitFor(() => h!.bot.store.getGeneration(g.id)!.status === 'cancelled', 'generation cancelled');
    const { message: next } = await h.imagine(h.users.alice, 'a castle on a hill', { steps });
    expect((await h.finished(next.id, 120_000)).content).toMatch(/^✅/);
  });
});

describe('painting: queue, worker and Discord failure modes (engine on the tiny checkpoint)', () => {
  it('progress edits come at most once per 2.5 s and show the step', async () => {
    // 768² on the tiny model: 120–300 ms a step on two cores, so 36 steps span at least two 2.5 s windows.
    h = await Harness.start({ painter: 'engine', env: { DEFAULT_SIZE: '768' }, progressEveryMs: 2500 });
    const { ix, message } = await h.imagine(h.users.alice, 'a blue boat on a lake', { steps: 36 });
    await h.finished(message.id, 60_000);
    const edits = h.fake.requestsTo('PATCH', new RegExp(`/webhooks/\\d+/${ix.token}/messages/@original$`));
    const progress = edits.filter((r) => /step \d+\/36/.test((r.body as { content?: string }).content ?? ''));
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]!.at - progress[i - 1]!.at).toBeGreaterThanOrEqual(2400);
    expect(progress.some((r) => r.files.some((f) => f.filename === 'preview.webp'))).toBe(true);
  });

  it('Delete by someone else is refused; a moderator may delete', async () => {
    h = await Harness.start({ painter: 'engine', env: QUICK });
    const { message } = await h.imagine(h.users.alice, 'a castle on a hill', { steps: 1 });
    const done = await h.finished(message.id);
    const g = h.bot.store.generationForMessage(done.id)!;
    for (const verb of ['reroll', 'delete', 'edit']) {
      const ix = h.fake.clickButton(h.users.bob, done.id, `${verb}:${g.id}`);
      expect((await h.answered(ix)).content).toMatch(/Only <@\d+>/);
    }
    expect(await h.bot.queue.stats()).toMatchObject({ queued: 0, running: 0 });
    h.fake.clickButton(h.users.mod, done.id, `delete:${g.id}`);
    await h.fake.waitFor(() => !h!.fake.messages.has(done.id), 'moderator delete');
  });

  it('the worker killed mid-job: the user is told, the job runs again once and the image arrives', async () => {
    // 512², 16 steps: the kill after step 2 lands well before the end.
    h = await Harness.start({ painter: 'engine' });
    const { message } = await h.imagine(h.users.alice, 'a windmill in a field', { steps: 16 });
    const g = h.bot.store.generationForMessage(message.id)!;
    await waitForJob(g.jobId!, (j) => (j.progress?.step ?? 0) >= 2);
    process.kill(h.bot.host!.childPid!, 'SIGKILL');
    await h.fake.waitFor(
      () => /put back in the queue/.test(h!.fake.messages.get(message.id)!.content),
      'the user to be told',
    );
    const done = await h.finished(message.id);
    expect(done.content).toMatch(/^✅/);
    expect((await h.bot.queue.get(g.jobId!))!.attempts).toBe(2);
  });

  it('a bot restart mid-job: the job is re-queued once and finished by the new process', async () => {
    h = await Harness.start({ painter: 'engine' });
    const { message } = await h.imagine(h.users.alice, 'a windmill in a field', { steps: 16 });
    const g = h.bot.store.generationForMessage(message.id)!;
    await waitForJob(g.jobId!, (j) => (j.progress?.step ?? 0) >= 2);
    await h.restartBot();
    const done = await h.finished(message.id);
    expect(done.content).toMatch(/^✅/);
    const job = await waitForJob(g.jobId!, (j) => j.deliveredAt !== null);
    expect(job.attempts).toBe(2);
  });

  it('an expired interaction token: the finished image is posted as a channel message replying to the original', async () => {
    // 256², 4 steps: long enough that the token expires before the image is ready.
    h = await Harness.start({ painter: 'engine', env: { DEFAULT_SIZE: '256' } });
    const { ix, message } = await h.imagine(h.users.alice, 'a hot air balloon over hills', { steps: 4 });
    h.fake.expireToken(ix.token);
    const result = await h.fake.waitFor(
      () => h!.fake.repliesTo(message.id).find((m) => m.author.id === h!.fake.bot.id && m.attachments.length === 1),
      'a channel message with the image',
    );
    expect(result.content).toMatch(/^✅/);
    const g = h.bot.store.generationForMessage(message.id)!;
    await h.fake.waitFor(() => h!.bot.store.messageLink(result.id), 'the new message to be linked');
    expect(h.buttons(result)).toEqual([
      `reroll:${g.id}`,
      `layout:${g.id}`,
      `edit:${g.id}`,
      `history:${g.id}`,
      `delete:${g.id}`,
    ]);
    expect(h.fake.requestsTo('POST', new RegExp(`/channels/${h.channel.id}/messages$`)).length).toBeGreaterThanOrEqual(
      1,
    );
    // A reply to the fallback message works like one to the original.
    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the balloon red', { replyTo: result.id });
    expect((await h.finished((await h.replyTo(reply.id)).id)).content).toMatch(/^✅ Repainted/);
  });

  it('`bot` without an embedded worker: a separate worker on the same DATA_DIR paints, the bot delivers', async () => {
    h = await Harness.start({ painter: 'engine', embeddedWorker: false, env: QUICK });
    expect(h.bot.painting.mode).toBe('external');
    expect(h.bot.host).toBeUndefined();
    const { message } = await h.imagine(h.users.alice, 'a paper boat on a puddle', { steps: 2 });
    expect(message.content).toMatch(/Queued/);
    // What `scenewright worker` does, on its own database connection.
    const db = openDatabase(h.dataDir);
    const queue = new SqliteQueue(db, { pollMs: 30 });
    const { model } = h.config;
    const worker = new WorkerHost({
      queue,
      dataDir: h.dataDir,
      painterModule: ENGINE_PAINTER_MODULE,
      painterOptions: { modelDir: model.dir!, executionProvider: model.executionProvider, threads: model.threads },
      pollMs: 30,
    });
    try {
      await worker.start();
      const done = await h.finished(message.id);
      expect(done.content).toMatch(/^✅/);
      expect(done.attachments).toHaveLength(1);
      expect(h.bot.store.generationForMessage(done.id)!.modelId).toBe('flux.1-schnell');
    } finally {
      await worker.stop();
      await queue.close();
      db.close();
    }
  });

  it('20 users at once: each is acknowledged in time, gets a correct queue position and their own image', async () => {
    h = await Harness.start({ painter: 'engine', env: QUICK });
    const users = Array.from({ length: 20 }, (_, i) => h!.fake.join(h!.guildId, `user${i}`));
    h.bot.host!.pause();
    const ixs = users.map((u, i) =>
      h!.fake.slashCommand(u, h!.channel.id, 'imagine', { prompt: `a lantern number ${i + 1} on a table`, steps: 1 }),
    );
    const first = await Promise.all(ixs.map((ix) => h!.answered(ix, 30_000)));
    for (const ix of ixs) expect(ix.ackMs).toBeLessThan(3000);
    // Positions follow the order in which the jobs entered the queue: 1..20, each once.
    const jobs = await Promise.all(
      first.map(async (m) => (await h!.bot.queue.get(h!.bot.store.generationForMessage(m.id)!.jobId!))!),
    );
    const shown = first.map((m) => {
      const p = /Queued: (next in the queue|position (\d+))/.exec(m.content);
      return p ? (p[2] ? Number(p[2]) : 1) : NaN;
    });
    expect([...shown].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // Nothing ran meanwhile (the worker is paused), so what each user was shown is still their place.
    expect(await Promise.all(jobs.map((j) => h!.bot.queue.position(j.id)))).toEqual(shown);
    expect(new Set(jobs.map((j) => j.userId)).size).toBe(20);
    h.bot.host!.resume();
    const done = await Promise.all(first.map((m) => h!.finished(m.id, 60_000)));
    done.forEach((m, i) => {
      expect(m.content).toMatch(new RegExp(`^✅ “a lantern number ${i + 1} on a table”`));
      expect(m.attachments).toHaveLength(1);
      expect((m.interaction_metadata as { user: { id: string } }).user.id).toBe(users[i]!.id);
    });
  });

  it('per-user limit: a job beyond USER_MAX_CONCURRENT_JOBS is refused privately', async () => {
    h = await Harness.start({ painter: 'engine', env: { ...QUICK, USER_MAX_CONCURRENT_JOBS: '1' } });
    h.bot.host!.pause();
    await h.imagine(h.users.alice, 'a kite', { steps: 2 });
    const { message } = await h.imagine(h.users.alice, 'another kite', { steps: 2 });
    expect(message.flags & 64).toBe(64);
    expect(message.content).toMatch(/already have 1 image waiting or painting \(the limit is 1\)/);
    h.bot.host!.resume();
  });

  it('an image over the upload limit is sent as WebP under the limit', async () => {
    // The tiny model's 128² output is noise-like: tens of kB as PNG, a few kB as a small WebP.
    h = await Harness.start({ painter: 'engine', env: QUICK, fake: { attachmentSizeLimit: 4000 } });
    const { message } = await h.imagine(h.users.alice, 'three coloured boxes', { steps: 1 });
    const done = await h.finished(message.id);
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(readFileSync(g.artifacts['image.png']!).length).toBeGreaterThan(4000);
    expect(done.attachments[0]!.filename).toMatch(/\.webp$/);
    expect(done.attachments[0]!.size).toBeLessThanOrEqual(4000);
    expect((await imageOf(done)).format).toBe('webp');
  });

  it('a painter that cannot load: the bot says so and still plans layouts', async () => {
    broken = brokenCheckpoint('no-transformer');
    h = await Harness.start({ painter: 'engine', modelDir: broken.dir });
    expect(h.bot.painting.mode).toBe('failed');
    const { message } = await h.imagine(h.users.alice, 'a snowman');
    expect(message.content).toMatch(
      /image model failed to load \(transformer\/ folder is missing \(model_index\.json lists it\)\)/,
    );
    expect(message.attachments).toHaveLength(1);
  });

  it("a checkpoint that breaks only when a prompt is encoded fails at start-up, not in a user's job", async () => {
    // Configs and shapes are fine; the T5 tokenizer file is cut short. The worker's warm-up encodes a prompt, so
    // the painter is refused before any job reaches it.
    broken = brokenCheckpoint('broken-tokenizer');
    h = await Harness.start({ painter: 'engine', modelDir: broken.dir, env: QUICK });
    expect(h.bot.painting.mode).toBe('failed');
    const { message } = await h.imagine(h.users.alice, 'a volcano at night', { steps: 1 });
    expect(message.content).toMatch(
      /image model failed to load \(cannot read \S*tokenizer_2\/tokenizer\.json: Unexpected end of JSON input/,
    );
  });

  it('a painting that fails ends in a visible message with what to do next', async () => {
    // 18 boxes pass the bot's limit (MAX_REGIONS=20) but not the engine's (17 regional streams): the engine
    // refuses the job before its first step.
    h = await Harness.start({ painter: 'engine', env: { MAX_REGIONS: '20', DEFAULT_SIZE: '1024' } });
    const regions = Array.from({ length: 18 }, (_, k) => `thing ${k + 1} @ ${(k * 5.5).toFixed(1)} 20 5 60`).join('; ');
    const ix = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', { regions, steps: 1 });
    const message = await h.answered(ix);
    const done = await h.finished(message.id);
    expect(done.content).toMatch(
      /^⚠️ I could not paint .*: painting failed: this layout needs 18 regional streams \(hard-binding boxes \+ repaint pre-pass\); the engine takes at most 17\. Use fewer regions.*Try again/s,
    );
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(h.buttons(done)).toEqual([`reroll:${g.id}`, `delete:${g.id}`]);
    expect(g.status).toBe('failed');
  });

  it('/queue shows the caller their place', async () => {
    h = await Harness.start({ painter: 'engine', env: QUICK });
    h.bot.host!.pause();
    await h.imagine(h.users.bob, 'a fox', { steps: 2 });
    await h.imagine(h.users.alice, 'a hare', { steps: 2 });
    const ix = h.fake.slashCommand(h.users.alice, h.channel.id, 'queue');
    const answer = await h.answered(ix);
    expect(answer.content).toMatch(/0 painting, 2 waiting/);
    expect(answer.content).toMatch(/“a hare”: position 2 in the queue/);
    h.bot.host!.resume();
  });
});

async function waitForJob(
  id: string,
  pred: (j: NonNullable<Awaited<ReturnType<Harness['bot']['queue']['get']>>>) => boolean,
  timeoutMs = 20_000,
) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const j = await h!.bot.queue.get(id);
    if (j && pred(j)) return j;
    if (Date.now() > end) throw new Error(`job ${id} did not reach the state (is ${j?.status})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
