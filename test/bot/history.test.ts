// History and Undo end to end: the fake Discord, the real bot and the engine's painter on the tiny checkpoint,
// at 128² in one step (the scenarios are about the conversation, not the picture).
import { rmSync } from 'node:fs';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';
import type { ApiMessage } from '../support/fake-discord/index.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const QUICK = { MIN_SIZE: '128', DEFAULT_SIZE: '128' };
const start = () => Harness.start({ painter: 'engine', env: QUICK });

/** Replies to `to` with `text` and waits for the finished result; returns it and its generation. */
async function reply(to: ApiMessage, text: string): Promise<ApiMessage> {
  const r = h!.fake.userMessage(h!.users.alice, h!.channel.id, text, { replyTo: to.id });
  const answer = await h!.replyTo(r.id, 60_000);
  return h!.finished(answer.id, 120_000);
}

const generationOf = (m: ApiMessage) => h!.bot.store.generationForMessage(m.id)!;

async function press(user: 'alice' | 'bob', m: ApiMessage, customId: string): Promise<ApiMessage> {
  return h!.answered(h!.fake.clickButton(h!.users[user], m.id, customId), 30_000);
}

describe('History and Undo on the tiny checkpoint', () => {
  it('History of a third version shows three thumbnails; continuing from the first makes the next reply edit it; only the author may press it; it works after a restart', async () => {
    h = await start();
    const { message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right', {
      steps: 1,
    });
    const v1 = await h.finished(message.id, 120_000);
    const v2 = await reply(v1, 'make the cat orange');
    const v3 = await reply(v2, 'make the dog brown');
    const [g1, g2, g3] = [v1, v2, v3].map(generationOf);
    expect(g3!.parentId).toBe(g2!.id);
    for (const m of [v1, v2, v3]) expect(h.buttons(m)).toContain(`history:${generationOf(m).id}`);

    const refused = await press('bob', v3, `history:${g3!.id}`);
    expect(refused.flags & 64).toBe(64);
    expect(refused.content).toMatch(/Only <@\d+> \(who asked for this image\)/);

    await h.restartBot();
    const shown = await press('alice', v3, `history:${g3!.id}`);
    expect(shown.content).toMatch(/History.*3 versions/);
    expect(h.buttons(shown)).toEqual([`continue:${g1!.id}`, `continue:${g2!.id}`, `continue:${g3!.id}`]);
    const picture = h.fake.attachmentBytes(shown.attachments[0]!);
    const meta = await sharp(picture).metadata();
    // Three 160-px tiles with 12-px gaps in one row.
    expect(meta.width).toBe(12 + 3 * (160 + 12));
    // Each tile is the version's image scaled down: its mean colour matches the image's.
    // (stats() reads its input, not the pipeline: cut the tile out first.)
    const tiles = await Promise.all(
      [0, 1, 2].map(async (i) =>
        sharp(
          await sharp(picture)
            .extract({ left: 12 + i * 172, top: 12, width: 160, height: 160 })
            .png()
            .toBuffer(),
        ).stats(),
      ),
    );
    const images = await Promise.all([g1, g2, g3].map((g) => sharp(g!.artifacts['image.png']!).stats()));
    for (let i = 0; i < 3; i++)
      for (let c = 0; c < 3; c++)
        expect(Math.abs(tiles[i]!.channels[c]!.mean - images[i]!.channels[c]!.mean)).toBeLessThan(12);

    const back = await press('alice', shown, `continue:${g1!.id}`);
    expect(back.content).toMatch(/Back to v1/);
    expect(back.attachments).toHaveLength(1);
    expect(h.buttons(back)).toContain(`history:${g1!.id}`);
    const v4 = await reply(back, 'make the dog blue');
    const g4 = generationOf(v4);
    expect(g4).toMatchObject({ parentId: g1!.id, kind: 'repaint', status: 'done' });
    expect(g4.params.scene.regions.map((r) => r.label).join(' ')).toMatch(/black cat.*blue dog/);
  });

  it('Undo after a repaint brings the parent back without painting, and the next reply edits the parent; a region the undo removed gets the clarifying question', async () => {
    h = await start();
    const { message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right', {
      steps: 1,
    });
    const v1 = await h.finished(message.id, 120_000);
    const v2 = await reply(v1, 'add a red ball between them');
    const [g1, g2] = [v1, v2].map(generationOf);
    expect(g2!.params.scene.regions.some((r) => r.label === 'a red ball')).toBe(true);
    expect(h.buttons(v1)).not.toContain(`undo:${g1!.id}`);
    expect(h.buttons(v2)).toContain(`undo:${g2!.id}`);

    const jobsBefore = h.bot.store.db.prepare('SELECT count(*) AS n FROM generations').get() as { n: number };
    const undone = await press('alice', v2, `undo:${g2!.id}`);
    expect(undone.content).toMatch(/Undid/);
    expect(undone.attachments).toHaveLength(1);
    // The parent's own pixels, and nothing new was painted.
    expect(await sharp(h.fake.attachmentBytes(undone.attachments[0]!)).raw().toBuffer()).toEqual(
      await sharp(g1!.artifacts['image.png']!).raw().toBuffer(),
    );
    expect((h.bot.store.db.prepare('SELECT count(*) AS n FROM generations').get() as { n: number }).n).toBe(
      jobsBefore.n,
    );
    expect(h.bot.store.messageLink(undone.id)).toMatchObject({ generationId: g1!.id, role: 'result' });

    // The ball is gone in this version: asking to change it is answered with a question, not a wrong edit.
    const q = h.fake.userMessage(h.users.alice, h.channel.id, 'make the ball blue', { replyTo: undone.id });
    const question = await h.replyTo(q.id);
    expect(question.content).toMatch(/^❓/);
    expect(question.content).toMatch(/ball/);
    expect(question.attachments).toHaveLength(0);

    const v3 = await reply(undone, 'make the cat orange');
    expect(generationOf(v3)).toMatchObject({ parentId: g1!.id, kind: 'repaint' });
    expect(generationOf(v3).params.scene.regions.some((r) => /ball/.test(r.label))).toBe(false);
  });

  it('History of a version whose files were deleted says so and draws the chain from what remains', async () => {
    h = await start();
    const { message } = await h.imagine(h.users.alice, 'a red apple next to a green pear', { steps: 1 });
    const v1 = await h.finished(message.id, 120_000);
    const v2 = await reply(v1, 'make the apple yellow');
    const [g1, g2] = [v1, v2].map(generationOf);
    rmSync(g1!.artifacts['image.png']!);
    const shown = await press('alice', v2, `history:${g2!.id}`);
    expect(shown.content).toMatch(/History.*2 versions/);
    expect(shown.content).toMatch(/image of v1 was deleted/);
    const meta = await sharp(h.fake.attachmentBytes(shown.attachments[0]!)).metadata();
    expect(meta.width).toBe(12 + 2 * (160 + 12));
    // Continuing from the version without an image shows its layout and says a reply paints it afresh.
    const back = await press('alice', shown, `continue:${g1!.id}`);
    expect(back.content).toMatch(/image of this version was deleted/);
    const v3 = await reply(back, 'make the pear red');
    expect(generationOf(v3)).toMatchObject({ parentId: g1!.id, kind: 'generate', status: 'done' });
  });

  it('without a model: History shows the layouts, Undo brings the previous layout back', async () => {
    h = await Harness.start();
    const { message } = await h.imagine(h.users.alice, 'a cat on the left and a dog on the right');
    const g1 = generationOf(message);
    const r = h.fake.userMessage(h.users.alice, h.channel.id, 'add a red ball between them', { replyTo: message.id });
    const changed = await h.replyTo(r.id);
    const g2 = generationOf(changed);
    expect(g2).toMatchObject({ kind: 'layout', parentId: g1.id });
    const undone = await press('alice', changed, `undo:${g2.id}`);
    expect(undone.content).toMatch(/Undid/);
    expect(h.bot.store.messageLink(undone.id)).toMatchObject({ generationId: g1.id });
    const shown = await press('alice', changed, `history:${g2.id}`);
    expect(h.buttons(shown)).toEqual([`continue:${g1.id}`, `continue:${g2.id}`]);
    expect(shown.content).not.toMatch(/deleted/);
  });
});
