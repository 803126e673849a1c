// The bot on a public server, tried as an attacker and a clumsy user would (issue 19), end to end on the fake
// Discord: forged buttons, bursts of requests, a crash while a message is being answered, damaged files,
// invisible and direction-flipping text, results whose channel is gone, and the guild allow-list.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness, TINY_MODEL } from './harness.ts';
import { startBot } from '../../src/bot/app.ts';
import { loadConfig } from '../../src/config/config.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.ts';
import type { ApiMessage, FakeInteraction } from '../support/fake-discord/index.ts';

let h: Harness | undefined;
let llm: FakeOpenAI | undefined;
afterEach(async () => {
  await h?.close();
  await llm?.close();
  h = undefined;
  llm = undefined;
});

const plan = {
  prompt: 'A red apple on a wooden table.',
  background: 'a wooden table',
  exclude: [],
  aspect: null,
  regions: [{ label: 'a red apple', prompt: 'a shiny red apple', box: { x: 0.3, y: 0.3, w: 0.4, h: 0.4 } }],
};

const EPHEMERAL = 64;

/** A custom_id is whatever a client sends: put one on a real message, as a modified client could. */
function forgeButton(h: Harness, messageId: string, customId: string): void {
  const m = h.fake.messages.get(messageId)!;
  (m.components as { components: Record<string, unknown>[] }[])[0]!.components.push({
    type: 2,
    style: 4,
    label: 'Delete',
    custom_id: customId,
  });
}

function generationCount(h: Harness): number {
  return (h.bot.store.db.prepare('SELECT count(*) AS n FROM generations').get() as { n: number }).n;
}

async function allAnswered(h: Harness, ixs: FakeInteraction[]): Promise<ApiMessage[]> {
  return Promise.all(ixs.map((ix) => h.answered(ix, 60_000)));
}

describe('buttons act on the message they are on', () => {
  it('a forged delete:<own generation> pressed on someone else’s message deletes nothing', async () => {
    h = await Harness.start();
    const alice = await h.imagine(h.users.alice, 'a red apple on a table');
    const bob = await h.imagine(h.users.bob, 'a green pear on a table');
    const ga = h.bot.store.generationForMessage(alice.message.id)!;
    forgeButton(h, bob.message.id, `delete:${ga.id}`);
    const answer = await h.answered(h.fake.clickButton(h.users.alice, bob.message.id, `delete:${ga.id}`));
    expect(answer.flags & EPHEMERAL).toBe(EPHEMERAL);
    expect(answer.content).toMatch(/does not belong to this message/);
    expect(h.fake.messages.get(bob.message.id)).toBeDefined();
    expect(h.fake.messages.get(alice.message.id)).toBeDefined();
    // The real button still works, and says what it did.
    const del = h.fake.clickButton(h.users.alice, alice.message.id, `delete:${ga.id}`);
    await h.fake.waitFor(() => !h!.fake.messages.get(alice.message.id), 'alice’s message to be deleted');
    const said = await h.fake.waitFor(() => del.ephemeral.at(-1), 'what Delete did');
    expect(said.content).toMatch(/Deleted the message.*keeps its record/s);
  });
});

describe('refusals cost nothing', () => {
  it('30 simultaneous /imagine from one user: one LLM call, one stored generation, 29 private refusals', async () => {
    llm = await startFakeOpenAI({ respond: () => ({ json: plan }) });
    h = await Harness.start({
      env: { OPENAI_BASE_URL: llm.url, OPENAI_API_KEY: 'test-key', USER_COOLDOWN_SECONDS: '5' },
    });
    const ixs = Array.from({ length: 30 }, (_, i) =>
      h!.fake.slashCommand(h!.users.alice, h!.channel.id, 'imagine', { prompt: `a red apple number ${i}` }),
    );
    const answers = await allAnswered(h, ixs);
    const refused = answers.filter((m) => m.flags & EPHEMERAL);
    expect(refused).toHaveLength(29);
    for (const m of refused) expect(m.content).toMatch(/Slow down a little/);
    expect(answers.filter((m) => m.attachments.length === 1 && !(m.flags & EPHEMERAL))).toHaveLength(1);
    expect(llm.requests).toHaveLength(1);
    expect(generationCount(h)).toBe(1);
    expect(readdirSync(h.bot.store.artifactsDir)).toHaveLength(1);
  });

  it('without a cooldown the per-user job limit holds for requests sent together, before any planning', async () => {
    // MODEL_DIR without an embedded worker: jobs are queued for workers that never come, so they stay active.
    h = await Harness.start({
      embeddedWorker: false,
      env: { MODEL_DIR: TINY_MODEL, USER_MAX_CONCURRENT_JOBS: '2' },
    });
    const ixs = Array.from({ length: 30 }, (_, i) =>
      h!.fake.slashCommand(h!.users.alice, h!.channel.id, 'imagine', { prompt: `a cat number ${i}` }),
    );
    const answers = await allAnswered(h, ixs);
    const refused = answers.filter((m) => m.flags & EPHEMERAL);
    expect(refused).toHaveLength(28);
    for (const m of refused) expect(m.content).toMatch(/the limit is 2/);
    expect(answers.filter((m) => /Queued/.test(m.content))).toHaveLength(2);
    expect(generationCount(h)).toBe(2);
    expect((await h.bot.queue.activeFor(h.users.alice.id)).length).toBe(2);
    // Bob is not held back by alice's burst.
    expect((await h.imagine(h.users.bob, 'a dog')).message.content).toMatch(/Queued/);
  });

  it('Layout, History and Continue pictures are limited per user per minute', async () => {
    h = await Harness.start({ env: { USER_RENDERS_PER_MINUTE: '2' } });
    const { message } = await h.imagine(h.users.alice, 'a red apple on a table');
    const g = h.bot.store.generationForMessage(message.id)!;
    for (let i = 0; i < 2; i++) {
      const shown = await h.answered(h.fake.clickButton(h.users.alice, message.id, `layout:${g.id}`));
      expect(shown.content).toMatch(/Layout/);
    }
    const third = await h.answered(h.fake.clickButton(h.users.alice, message.id, `history:${g.id}`));
    expect(third.flags & EPHEMERAL).toBe(EPHEMERAL);
    expect(third.content).toMatch(/2 pictures in a minute; try again in \d+ s/);
    // Another user has their own allowance.
    const bobs = await h.answered(h.fake.clickButton(h.users.bob, message.id, `layout:${g.id}`));
    expect(bobs.content).toMatch(/Layout/);
  });
});

describe('messages cut off by a restart', () => {
  it('a mention being planned when the process stops is answered once by the next process', async () => {
    llm = await startFakeOpenAI({ respond: () => ({ hang: true }) });
    h = await Harness.start({
      env: { OPENAI_BASE_URL: llm.url, OPENAI_API_KEY: 'test-key', OPENAI_TIMEOUT_MS: '600000' },
    });
    const m = h.fake.userMessage(h.users.alice, h.channel.id, 'a quiet harbour at night', { mentionBot: true });
    await h.fake.waitFor(() => llm!.requests.length > 0, 'the planner to be waiting on the LLM');
    await h.restartBot();
    const told = await h.replyTo(m.id);
    expect(told.content).toMatch(/restarted while working on this/);
    await h.restartBot();
    await new Promise((r) => setTimeout(r, 300));
    expect(h.fake.repliesTo(m.id).filter((r) => r.author.id === h!.fake.bot.id)).toHaveLength(1);
  });
});

describe('text users cannot see', () => {
  it('a prompt of zero-width spaces is a private user error, not an internal failure', async () => {
    h = await Harness.start();
    const { ix, message } = await h.imagine(h.users.alice, '\u200b\u200b\u200b\u2060');
    expect(ix.ackType).toBe(4);
    expect(message.flags & EPHEMERAL).toBe(EPHEMERAL);
    expect(message.content).toMatch(/Tell me what to paint/);
    expect(message.content).not.toMatch(/wrong on my side/);
    expect(generationCount(h)).toBe(0);
  });

  it('bidi overrides and NUL never reach the bot’s messages, and cannot hide a denied word', async () => {
    h = await Harness.start({ env: { PROMPT_DENY_LIST: 'lava' } });
    const { message } = await h.imagine(h.users.alice, 'a cat \u202Eon a mat\u0000 by the fire');
    expect(message.attachments).toHaveLength(1);
    expect(message.content).toMatch(/a cat on a mat by the fire/);
    for (const m of h.fake.channelMessages(h.channel.id))
      for (const hidden of ['\u202E', '\u0000', '\u200b']) expect(m.content.includes(hidden)).toBe(false);
    const hidden = await h.imagine(h.users.bob, 'a la\u200bva lamp');
    expect(hidden.message.content).toMatch(/not allow/);
  });
});

describe('access', () => {
  it('ALLOWED_GUILD_IDS: other guilds are refused', async () => {
    h = await Harness.start({ env: { ALLOWED_GUILD_IDS: '123456789012345678' } });
    const denied = await h.imagine(h.users.alice, 'a tree');
    expect(denied.message.flags & EPHEMERAL).toBe(EPHEMERAL);
    expect(denied.message.content).toMatch(/not set up to work in this server/);
    // The guild named in the list (the fake's ids are made per run, so it is added once the guild exists).
    h.config.access.allowedGuildIds.push(h.guildId);
    expect((await h.imagine(h.users.alice, 'a tree')).message.attachments).toHaveLength(1);
  });
});

describe('undeliverable results', () => {
  it('a result whose channel is gone is given up at once, logged, and not tried again after a restart', async () => {
    h = await Harness.start({ embeddedWorker: false, env: { MODEL_DIR: TINY_MODEL } });
    const { message } = await h.imagine(h.users.alice, 'a red apple');
    const g = h.bot.store.generationForMessage(message.id)!;
    // The channel was deleted after the request, and the interaction token has expired meanwhile: the result
    // can only go to the channel as a new message, which Discord refuses with 404 Unknown Channel (10003).
    const gone = '987654321098765432';
    await h.bot.queue.setTarget(g.jobId!, { channelId: gone, tokenExpiresAt: 1 });
    await h.bot.queue.cancel(g.jobId!, 'the operator cancelled it');
    const tries = () => h!.fake.requestsTo('POST', new RegExp(`/channels/${gone}/messages$`)).length;
    await h.fake.waitFor(() => tries() >= 1, 'a try to show the result');
    await h.fake.waitFor(
      () => h!.bot.store.db.prepare('SELECT 1 FROM delivery_failures').get(),
      'the failure to be counted',
    );
    await new Promise((r) => setTimeout(r, 300));
    expect((await h.bot.queue.undelivered()).map((j) => j.id)).not.toContain(g.jobId);
    await h.restartBot();
    await new Promise((r) => setTimeout(r, 500));
    expect(tries()).toBe(1);
  });
});

describe('damaged files', () => {
  const QUICK = { MIN_SIZE: '128', DEFAULT_SIZE: '128' };
  const noInternals = (m: ApiMessage) => {
    expect(m.content).not.toMatch(/wrong on my side|Input buffer|safetensors|\/artifacts\//);
    expect(m.content).not.toContain(h!.dataDir);
  };

  it('a corrupt trajectory or a corrupt or empty image.png counts as missing: edits paint afresh, History shows a grey tile', async () => {
    h = await Harness.start({ painter: 'engine', env: QUICK });
    const { message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right', {
      steps: 1,
    });
    const first = await h.finished(message.id, 120_000);
    const g1 = h.bot.store.generationForMessage(first.id)!;
    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the cat orange', { replyTo: first.id });
    const repainted = await h.finished((await h.replyTo(reply.id)).id, 120_000);
    const g2 = h.bot.store.generationForMessage(repainted.id)!;
    expect(g2.kind).toBe('repaint');

    // A repaint of a repaint replays its trajectory: a damaged one makes it paint the change afresh.
    writeFileSync(g2.artifacts['trajectory.safetensors']!, 'not a safetensors file');
    const reply2 = h.fake.userMessage(h.users.alice, h.channel.id, 'make the dog brown', { replyTo: repainted.id });
    const answer2 = await h.replyTo(reply2.id);
    expect(answer2.content).toMatch(/Painting the changed layout/);
    const done2 = await h.finished(answer2.id, 120_000);
    expect(done2.content).toMatch(/^✅/);
    noInternals(done2);

    // The first image damaged: an edit of it paints afresh too.
    writeFileSync(g1.artifacts['image.png']!, 'not a png');
    const reply3 = h.fake.userMessage(h.users.alice, h.channel.id, 'make the dog grey', { replyTo: first.id });
    const answer3 = await h.replyTo(reply3.id);
    expect(answer3.content).toMatch(/Painting the changed layout/);
    noInternals(answer3);
    expect((await h.finished(answer3.id, 120_000)).content).toMatch(/^✅/);

    // An empty file: History still answers, with v1 drawn as missing.
    writeFileSync(g1.artifacts['image.png']!, '');
    const history = await h.answered(h.fake.clickButton(h.users.alice, repainted.id, `history:${g2.id}`));
    expect(history.content).toMatch(/image of v1 was deleted/);
    expect(history.attachments).toHaveLength(1);
    noInternals(history);
  });
});

describe('errors that say what went wrong', () => {
  it('Discord unreachable is a network problem, not a bad DISCORD_TOKEN', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sw-net-'));
    try {
      // A closed port on loopback: the connection is refused before any token is sent.
      const config = loadConfig(
        { DISCORD_TOKEN: 'a-token-never-sent', DISCORD_API_URL: 'http://127.0.0.1:9/api', DATA_DIR: dataDir },
        ['discord'],
      );
      const failure = await startBot(config, { embeddedWorker: false }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(failure?.message).toMatch(/^could not reach Discord at http:\/\/127\.0\.0\.1:9\/api \(ECONNREFUSED\)/);
      expect(failure?.message).not.toMatch(/check DISCORD_TOKEN/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a wrong token still says to check DISCORD_TOKEN', async () => {
    h = await Harness.start();
    const config = loadConfig({ ...envOf(h), DISCORD_TOKEN: 'wrong-token', DATA_DIR: h.dataDir + '-2' }, ['discord']);
    const failure = await startBot(config, { embeddedWorker: false }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    rmSync(h.dataDir + '-2', { recursive: true, force: true });
    expect(failure?.message).toMatch(/check DISCORD_TOKEN/);
  });
});

function envOf(h: Harness): Record<string, string> {
  return { DISCORD_API_URL: h.fake.restUrl, DISCORD_APPLICATION_ID: h.fake.applicationId };
}

describe('LLM answers', () => {
  it('an answer of 10 MB is not read: the offline planner takes over at once', async () => {
    llm = await startFakeOpenAI({
      respond: () => ({ json: { ...plan, background: 'a wooden table '.repeat(700_000) } }),
    });
    h = await Harness.start({ env: { OPENAI_BASE_URL: llm.url, OPENAI_API_KEY: 'test-key' } });
    const started = Date.now();
    const { message } = await h.imagine(h.users.alice, 'a red apple on the left and a green pear on the right');
    expect(Date.now() - started).toBeLessThan(3000);
    expect(message.content).toMatch(/offline planner/);
    expect(h.bot.store.generationForMessage(message.id)!.planner).toBe('offline');
  });
});
