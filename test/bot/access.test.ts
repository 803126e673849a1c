// Limits and access rules from the configuration, slash command options, /layout and /settings, and the
// rule that nothing the bot says may ping anyone. Layout-only mode: none of this needs a painter.
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

function botMessages(): number {
  return h.fake.channelMessages(h.channel.id).filter((m) => m.author.id === h.fake.bot.id && !(m.flags & 64)).length;
}

describe('access and limits', () => {
  it('refuses denied words privately and stores nothing', async () => {
    h = await Harness.start({ env: { PROMPT_DENY_LIST: 'lava lamp,Gore' } });
    for (const prompt of ['a LAVA  lamp on a desk', 'gore everywhere']) {
      const { ix, message } = await h.imagine(h.users.alice, prompt);
      expect(ix.ackType).toBe(4);
      expect(message.flags & 64).toBe(64);
      expect(message.content).toMatch(/not allow/);
    }
    // Word boundaries: "lava" alone or "gorey" are fine.
    const { message } = await h.imagine(h.users.alice, 'a lava field under a gorgeous sky');
    expect(message.attachments).toHaveLength(1);
    expect(botMessages()).toBe(1);
  });

  it('follows the channel NSFW flag', async () => {
    h = await Harness.start();
    const sfw = await h.imagine(h.users.alice, 'a nude statue in a museum');
    expect(sfw.message.content).toMatch(/only paint in channels marked NSFW/);
    const nsfw = await h.imagine(h.users.alice, 'a nude statue in a museum', {}, h.nsfwChannel);
    expect(nsfw.message.attachments).toHaveLength(1);
  });

  it('works only in allowed channels and for allowed roles (moderators always)', async () => {
    h = await Harness.start({ env: { ALLOWED_CHANNEL_IDS: '123456789012345678' } });
    const denied = await h.imagine(h.users.alice, 'a tree');
    expect(denied.message.content).toMatch(/I only work in <#123456789012345678>/);
    await h.close();

    h = await Harness.start({ env: { ALLOWED_ROLE_IDS: '223456789012345678' } });
    expect((await h.imagine(h.users.alice, 'a tree')).message.content).toMatch(/roles this server allows/);
    expect((await h.imagine(h.users.mod, 'a tree')).message.attachments).toHaveLength(1);
  });

  it('enforces the cooldown between requests', async () => {
    h = await Harness.start({ env: { USER_COOLDOWN_SECONDS: '60' } });
    expect((await h.imagine(h.users.alice, 'a tree')).message.attachments).toHaveLength(1);
    const again = await h.imagine(h.users.alice, 'another tree');
    expect(again.message.flags & 64).toBe(64);
    expect(again.message.content).toMatch(/try again in (59|60) s/);
    expect((await h.imagine(h.users.bob, 'a tree')).message.attachments).toHaveLength(1);
  });

  it('never lets echoed user text ping anyone', async () => {
    h = await Harness.start();
    const { message } = await h.imagine(h.users.alice, `@everyone <@${h.users.bob.id}> a cat on a mat`);
    expect(message.content).toMatch(/@everyone/);
    const sent = h.fake.requestsTo('PATCH', /\/messages\/@original$/).at(-1)!;
    expect((sent.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({ parse: [], replied_user: false });
    const reply = h.fake.userMessage(
      h.users.alice,
      h.channel.id,
      `make the cat orange @everyone <@${h.users.bob.id}>`,
      { replyTo: message.id },
    );
    const answer = await h.replyTo(reply.id);
    expect(h.fake.lastAllowedMentions.get(answer.id)).toEqual({ parse: [], replied_user: false });
  });
});

describe('/layout, /settings', () => {
  it('/layout takes regions in the short text syntax', async () => {
    h = await Harness.start();
    const ix = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', {
      regions: 'a black cat @ left; a white dog: a fluffy white dog @ 55 20 40 70',
      background: 'a sunny garden',
      aspect: '16:9',
    });
    const message = await h.answered(ix);
    expect(message.attachments).toHaveLength(1);
    const g = h.bot.store.generationForMessage(message.id)!;
    expect(g.planner).toBe('explicit');
    expect(g.params.scene.regions.map((r) => r.label)).toEqual(['a black cat', 'a white dog']);
    expect(g.params.scene.regions[1]!.prompt).toBe('a fluffy white dog');
    expect(g.params.scene.background).toBe('a sunny garden');
    expect(g.params.scene.width).toBeGreaterThan(g.params.scene.height);
  });

  it('/layout takes a Scene JSON attachment, and explains what is wrong with a bad one', async () => {
    h = await Harness.start();
    const scene = {
      width: 512,
      height: 512,
      prompt: 'a red ball and a blue cube',
      background: 'a white table',
      exclude: [],
      regions: [
        { id: 'r1', label: 'a red ball', prompt: 'a shiny red ball', box: { x: 0.1, y: 0.4, w: 0.3, h: 0.3 } },
        { id: 'r2', label: 'a blue cube', prompt: 'a matte blue cube', box: { x: 0.6, y: 0.4, w: 0.3, h: 0.3 } },
      ],
    };
    const ok = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', {
      file: { filename: 'scene.json', data: Buffer.from(JSON.stringify(scene)) },
    });
    const message = await h.answered(ok);
    expect(h.bot.store.generationForMessage(message.id)!.params.scene.regions.map((r) => r.label)).toEqual([
      'a red ball',
      'a blue cube',
    ]);

    const bad = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', {
      file: { filename: 'scene.json', data: Buffer.from('{"width": 512}') },
    });
    expect((await h.answered(bad)).content).toMatch(/scene.json is not a usable Scene/);
    const typo = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', { regions: 'a cat @ 10 10' });
    const answer = await h.answered(typo);
    expect(answer.flags & 64).toBe(64);
    expect(answer.content).toMatch(/Region 1: "10 10" is not a place/);
  });

  it('/settings stores per-user defaults that /imagine then uses', async () => {
    h = await Harness.start();
    const set = h.fake.slashCommand(h.users.alice, h.channel.id, 'settings', { steps: 7, aspect: '9:16', seed: 1234 });
    expect((await h.answered(set)).content).toMatch(/steps: 7 · aspect: 9:16 · model: server default · seed: 1234/);
    const { message } = await h.imagine(h.users.alice, 'a tall tower');
    const g = h.bot.store.generationForMessage(message.id)!;
    expect(g.params.steps).toBe(7);
    expect(g.params.seed).toBe(1234);
    expect(g.params.scene.height).toBeGreaterThan(g.params.scene.width);
    // Options beat settings; other users are not affected.
    const { message: m2 } = await h.imagine(h.users.alice, 'a tall tower', { steps: 3, aspect: '1:1' });
    expect(h.bot.store.generationForMessage(m2.id)!.params.steps).toBe(3);
    const { message: m3 } = await h.imagine(h.users.bob, 'a tall tower');
    expect(h.bot.store.generationForMessage(m3.id)!.params.seed).not.toBe(1234);
    const reset = h.fake.slashCommand(h.users.alice, h.channel.id, 'settings', { reset: true });
    expect((await h.answered(reset)).content).toMatch(/seed: random/);
  });
});
