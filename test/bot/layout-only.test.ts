// The bot with no image model (MODEL_DIR unset): it plans, shows layouts, takes replies and buttons, and
// says that nothing will be painted. Real discord.js against the fake Discord, real SQLite, offline planner.
import sharp from 'sharp';
import { GatewayIntentBits } from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

describe('layout-only mode (no MODEL_DIR)', () => {
  it('/imagine is acknowledged within 3 s and answered with the layout picture and a note that no model is configured', async () => {
    h = await Harness.start();
    const { ix, message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right');
    expect(ix.ackType).toBe(5);
    expect(ix.ackMs).toBeLessThan(3000);
    expect(message.content).toMatch(/No image model is configured/);
    expect(message.content).toMatch(/cat/);
    expect(message.attachments).toHaveLength(1);
    const png = h.fake.attachmentBytes(message.attachments[0]!);
    const meta = await sharp(png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBe(512);
    const g = h.bot.store.generationForMessage(message.id)!;
    expect(g.status).toBe('layout');
    expect(g.kind).toBe('layout');
    expect(g.params.scene.regions.length).toBeGreaterThanOrEqual(2);
    expect(h.buttons(message)).toEqual([`layout:${g.id}`, `edit:${g.id}`, `history:${g.id}`, `delete:${g.id}`]);
    // Nothing was queued: there is nothing to paint with.
    expect(await h.bot.queue.stats()).toMatchObject({ queued: 0, running: 0 });
  });

  it('a reply to the layout changes it and answers with a new layout that replies to the user', async () => {
    h = await Harness.start();
    const { message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right');
    const before = h.bot.store.generationForMessage(message.id)!;
    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the cat orange', { replyTo: message.id });
    const answer = await h.replyTo(reply.id);
    expect(answer.message_reference).toMatchObject({ message_id: reply.id, type: 0 });
    expect(answer.attachments).toHaveLength(1);
    expect(answer.content).toMatch(/No image model is configured/);
    const after = h.bot.store.generationForMessage(answer.id)!;
    expect(after.parentId).toBe(before.id);
    expect(after.requestText).toBe('make the cat orange');
    expect(JSON.stringify(after.params.scene)).toMatch(/orange/);
    expect(h.fake.lastAllowedMentions.get(answer.id)).toMatchObject({ parse: [] });

    // A reply to the new layout chains.
    const reply2 = h.fake.userMessage(h.users.alice, h.channel.id, 'make the dog brown', { replyTo: answer.id });
    const answer2 = await h.replyTo(reply2.id);
    expect(h.bot.store.generationForMessage(answer2.id)!.parentId).toBe(after.id);
  });

  it('an ambiguous reply gets a clarifying question; a reply to the question goes on with the same image', async () => {
    h = await Harness.start();
    const { message } = await h.imagine(h.users.alice, 'a black cat on the left and a white cat on the right');
    const g = h.bot.store.generationForMessage(message.id)!;
    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the cat orange', { replyTo: message.id });
    const question = await h.replyTo(reply.id);
    expect(question.content).toMatch(/^❓ .*(black|white)/s);
    expect(question.attachments).toHaveLength(0);
    await h.fake.waitFor(() => h.bot.store.messageLink(question.id), 'the question to be linked');
    expect(h.bot.store.messageLink(question.id)).toMatchObject({
      role: 'question',
      generationId: g.id,
      history: ['make the cat orange', expect.any(String)],
    });
    const answer = h.fake.userMessage(h.users.alice, h.channel.id, 'make the black cat orange', {
      replyTo: question.id,
    });
    const changed = await h.replyTo(answer.id);
    const g2 = h.bot.store.generationForMessage(changed.id)!;
    expect(g2.parentId).toBe(g.id);
    expect(g2.params.scene.regions.map((r) => r.label).join(' ')).toMatch(
      /orange cat.*white cat|white cat.*orange cat/,
    );
  });

  it('ignores forwards of its messages and replies to messages that are not its images', async () => {
    h = await Harness.start();
    const { message } = await h.imagine(h.users.alice, 'a red apple on a table');
    const other = h.fake.userMessage(h.users.bob, h.channel.id, 'nice');
    h.fake.userMessage(h.users.alice, h.channel.id, '', { replyTo: message.id, forward: true });
    h.fake.userMessage(h.users.alice, h.channel.id, 'make it green', { replyTo: other.id });
    await new Promise((r) => setTimeout(r, 500));
    expect(h.fake.channelMessages(h.channel.id).filter((m) => m.author.id === h.fake.bot.id)).toHaveLength(1);
  });

  it('buttons keep working after the bot restarts (new client, same SQLite file)', async () => {
    h = await Harness.start();
    const { message } = await h.imagine(h.users.alice, 'a yellow duck on a pond');
    const g = h.bot.store.generationForMessage(message.id)!;
    await h.restartBot();

    const layout = h.fake.clickButton(h.users.alice, message.id, `layout:${g.id}`);
    const shown = await h.answered(layout);
    expect(shown.flags & 64).toBe(64);
    expect(shown.content).toMatch(/Layout/);
    expect(shown.content).toMatch(/duck/);
    expect(shown.attachments).toHaveLength(1);

    const edit = h.fake.clickButton(h.users.alice, message.id, `edit:${g.id}`);
    await h.fake.waitFor(() => edit.modal, 'the edit modal');
    expect(edit.ackType).toBe(9);
    const submit = h.fake.submitModal(edit, { instruction: 'make the duck blue' });
    const changed = await h.answered(submit);
    expect(changed.content).toMatch(/Changed layout/);
    expect(h.bot.store.generationForMessage(changed.id)!.parentId).toBe(g.id);

    const del = h.fake.clickButton(h.users.alice, message.id, `delete:${g.id}`);
    await h.fake.waitFor(() => !h.fake.messages.has(message.id), 'the message to be deleted');
    expect(del.ackType).toBe(6);
  });

  it('only the author or a moderator may edit or delete; anyone may look at the layout', async () => {
    h = await Harness.start();
    const { message } = await h.imagine(h.users.alice, 'a lighthouse on a cliff');
    const g = h.bot.store.generationForMessage(message.id)!;

    const bobDelete = h.fake.clickButton(h.users.bob, message.id, `delete:${g.id}`);
    const refusal = await h.answered(bobDelete);
    expect(refusal.flags & 64).toBe(64);
    expect(refusal.content).toMatch(/Only <@\d+> .* or a moderator can change it/);
    expect(h.fake.messages.has(message.id)).toBe(true);

    const bobEdit = h.fake.clickButton(h.users.bob, message.id, `edit:${g.id}`);
    await h.answered(bobEdit);
    expect(bobEdit.modal).toBeUndefined();

    const bobReply = h.fake.userMessage(h.users.bob, h.channel.id, 'make the lighthouse red', { replyTo: message.id });
    const answer = await h.replyTo(bobReply.id);
    expect(answer.content).toMatch(/Only <@\d+>/);
    expect(answer.attachments).toHaveLength(0);
    expect(h.fake.lastAllowedMentions.get(answer.id)).toMatchObject({ parse: [] });

    const bobLook = h.fake.clickButton(h.users.bob, message.id, `layout:${g.id}`);
    expect((await h.answered(bobLook)).content).toMatch(/Layout/);

    h.fake.clickButton(h.users.mod, message.id, `delete:${g.id}`);
    await h.fake.waitFor(() => !h.fake.messages.has(message.id), 'the moderator to delete it');
  });

  it('ALLOW_OTHERS_TO_EDIT lets anyone change an image', async () => {
    h = await Harness.start({ env: { ALLOW_OTHERS_TO_EDIT: 'true' } });
    const { message } = await h.imagine(h.users.alice, 'a lighthouse on a cliff');
    const reply = h.fake.userMessage(h.users.bob, h.channel.id, 'make the lighthouse red', { replyTo: message.id });
    const answer = await h.replyTo(reply.id);
    expect(answer.attachments).toHaveLength(1);
  });

  it('without the MessageContent intent: a plain reply gets directions, a reply that mentions the bot works', async () => {
    h = await Harness.start({ intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages] });
    expect(h.fake.identifies.at(-1)!.intents & (1 << 15)).toBe(0);
    const { message } = await h.imagine(h.users.alice, 'a red kite in a blue sky');
    const plain = h.fake.userMessage(h.users.alice, h.channel.id, 'make the kite green', { replyTo: message.id });
    expect((await h.replyTo(plain.id)).content).toMatch(/Message Content intent is off.*Edit/s);
    const mention = h.fake.userMessage(h.users.alice, h.channel.id, 'make the kite green', {
      replyTo: message.id,
      mentionBot: true,
    });
    const answer = await h.replyTo(mention.id);
    expect(answer.attachments).toHaveLength(1);
    expect(JSON.stringify(h.bot.store.generationForMessage(answer.id)!.params.scene)).toMatch(/green/);
  });

  it('an @mention without a reply plans a new image', async () => {
    h = await Harness.start();
    const m = h.fake.userMessage(h.users.alice, h.channel.id, 'two red apples on a plate', { mentionBot: true });
    const answer = await h.replyTo(m.id);
    expect(answer.content).toMatch(/Layout for/);
    expect(answer.attachments).toHaveLength(1);
  });

  it('an interaction token that dies early: the answer goes to the channel, mentioning only the user', async () => {
    h = await Harness.start();
    h.fake.once('callback', (ix) => h.fake.expireToken(ix.token));
    const ix = h.fake.slashCommand(h.users.alice, h.channel.id, 'imagine', { prompt: 'a calm lake at dawn' });
    const fallback = await h.fake.waitFor(
      () =>
        h.fake
          .channelMessages(h.channel.id)
          .find((m) => m.author.id === h.fake.bot.id && m.id !== ix.originalMessageId && m.attachments.length === 1),
      'the layout as a channel message',
    );
    expect(fallback.content).toMatch(new RegExp(`^<@${h.users.alice.id}> .*Layout for`, 's'));
    expect(h.fake.lastAllowedMentions.get(fallback.id)).toEqual({ parse: [], users: [h.users.alice.id] });
    // Buttons on the fallback message work like on any other.
    const g = await h.fake.waitFor(
      () => h.bot.store.generationForMessage(fallback.id),
      'the fallback message to be linked',
    );
    expect(h.buttons(fallback)).toContain(`edit:${g.id}`);
    // The bot's own token survived the 401 (webhook calls do not send it): it still answers.
    const { message } = await h.imagine(h.users.alice, 'a calm lake at dawn');
    expect(message.attachments).toHaveLength(1);
  });
});
