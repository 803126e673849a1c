// A reply that changes two regions, end to end on the tiny checkpoint: both are repainted, each in its own
// pass with its own prompt and mask, and every pixel outside both dilated masks is the parent's.
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';
import { dilateCross } from '../../src/rag/mask.ts';
import type { RagParams } from '../../src/rag/params.ts';
import { editToRepaintPasses } from '../../src/paint/scene-to-rag.ts';
import type { Box } from '../../src/scene/schema.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function rgb(file: string): Promise<Buffer> {
  return sharp(file).removeAlpha().raw().toBuffer();
}

/** The repaint area of a box change as RAG sees it: its old and new boxes, grown by the 10-px cross dilation. */
function area(boxes: Box[], width: number, height: number): Uint8Array {
  const black = new Uint8Array(width * height);
  for (const b of boxes) {
    for (let y = Math.round(b.y * height); y < Math.round((b.y + b.h) * height); y++) {
      for (let x = Math.round(b.x * width); x < Math.round((b.x + b.w) * width); x++) black[y * width + x] = 1;
    }
  }
  return dilateCross(black, width, height);
}

describe('several regions changed in one reply', () => {
  it('repaints each changed region with its own prompt, one after the other, and keeps every pixel outside both masks', async () => {
    h = await Harness.start({ painter: 'engine', env: { MIN_SIZE: '128', DEFAULT_SIZE: '128' } });
    const { message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right', {
      steps: 2,
    });
    const first = await h.finished(message.id, 120_000);
    const g1 = h.bot.store.generationForMessage(first.id)!;

    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the cat orange and the dog blue', {
      replyTo: first.id,
    });
    const answer = await h.replyTo(reply.id);
    expect(answer.content).toMatch(/Repainting .*orange cat.*blue dog/);
    const done = await h.finished(answer.id, 120_000);
    expect(done.content).toMatch(/^✅ Repainted/);
    const g2 = h.bot.store.generationForMessage(done.id)!;
    expect(g2).toMatchObject({ kind: 'repaint', parentId: g1.id, status: 'done' });
    expect(g2.params.repaint).toMatchObject({ mode: 'chained' });
    expect(g2.params.repaint!.regions.map((r) => r.id)).toEqual(['r1', 'r2']);

    // The passes the painter ran: one per region, each bound to its own label only.
    const passes = await editToRepaintPasses(g1.params.rag as RagParams, g1.params.scene, {
      scene: g2.params.scene,
      repaint: g2.params.repaint!.regions,
      regenerate: false,
      reason: '',
    });
    expect(passes.map((p) => p.params.Repainting_HB_prompt)).toEqual(['an orange cat', 'a blue dog']);
    expect(passes[0]!.params.Repainting_SR_prompt).not.toMatch(/blue dog/);
    expect(passes[0]!.params.Repainting_SR_prompt).toMatch(/white dog/);
    expect(passes[1]!.params.Repainting_SR_prompt).toMatch(/orange cat/);
    // Two passes of two steps each were reported as one run of four.
    const job = await h.bot.queue.get(g2.jobId!);
    expect(job!.progress?.total).toBe(4);

    const { width, height } = g1.params.scene;
    const [before, after] = [await rgb(g1.artifacts['image.png']!), await rgb(g2.artifacts['image.png']!)];
    const boxOf = (id: string) => g1.params.scene.regions.find((r) => r.id === id)!.box;
    const cat = area([boxOf('r1')], width, height),
      dog = area([boxOf('r2')], width, height);
    let outside = 0,
      changedInCat = 0,
      changedInDog = 0;
    for (let p = 0; p < width * height; p++) {
      const same =
        before[p * 3] === after[p * 3] &&
        before[p * 3 + 1] === after[p * 3 + 1] &&
        before[p * 3 + 2] === after[p * 3 + 2];
      if (!cat[p] && !dog[p]) {
        outside++;
        expect(same, `pixel ${p % width},${Math.floor(p / width)} outside both masks changed`).toBe(true);
      }
      if (cat[p] && !dog[p] && !same) changedInCat++;
      if (dog[p] && !cat[p] && !same) changedInDog++;
    }
    expect(outside).toBeGreaterThan(0);
    expect(changedInCat).toBeGreaterThan(0);
    expect(changedInDog).toBeGreaterThan(0);
  });
});
