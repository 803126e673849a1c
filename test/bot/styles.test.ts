// Styles (LoRAs in LORA_DIR) end to end on the fake Discord: /styles, autocomplete of /imagine's style option,
// /imagine and /layout with styles (the stored passes pin name, scale and SHA-256; the painter process gets the
// worker's own file paths), a reply that gives a region a style (a repaint whose pass carries Repainting_loras),
// and the refusals: an unknown style, and a worker that lacks a job's style or has another version of it.
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness, type HarnessOptions } from './harness.ts';
import type { FakeInteraction } from '../support/fake-discord/index.ts';
import { writeStyleFile } from './style-files.ts';
import type { PaintRequest } from '../../src/queue/schema.ts';

const RECORDING_PAINTER = path.resolve(import.meta.dirname, 'recording-painter.ts');
/** Small one-step paintings: these tests are about what reaches the painter, not the picture. */
const QUICK = { MIN_SIZE: '128', DEFAULT_SIZE: '128' };

let h: Harness | undefined;
let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'sw-styles-'));
});
afterEach(async () => {
  await h?.close();
  h = undefined;
  rmSync(tmp, { recursive: true, force: true });
});

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** The bot's style folder: watercolor (with trigger words and a base model) and ink. */
function styleDir(name = 'styles'): { dir: string; watercolor: string; ink: string } {
  const dir = path.join(tmp, name);
  const watercolor = writeStyleFile(dir, 'watercolor', {
    tags: { 'wc style': 12, 'paint splash': 5 },
    baseModel: 'flux1',
  });
  const ink = writeStyleFile(dir, 'ink', { seed: 2, tags: { 'ink drawing': 3 } });
  return { dir, watercolor, ink };
}

/** The requests the painter process received, in order. */
function recorded(file: string): PaintRequest[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as PaintRequest);
}

/** The bot's first answer to an interaction (later progress edits replace it quickly). */
function firstAnswer(ix: FakeInteraction): string {
  const first = h!.fake.requestsTo('PATCH', new RegExp(`/webhooks/\\d+/${ix.token}/messages/@original$`))[0];
  return (first?.body as { content?: string } | undefined)?.content ?? '';
}

/** The bot's first message in answer to a user's message (before progress edits). */
function firstReply(userMessageId: string): string {
  const post = h!.fake
    .requestsTo('POST', /\/channels\/\d+\/messages$/)
    .find(
      (r) =>
        (r.body as { message_reference?: { message_id?: string } }).message_reference?.message_id === userMessageId,
    );
  return (post?.body as { content?: string } | undefined)?.content ?? '';
}

async function painting(loraDir: string, o: HarnessOptions = {}): Promise<{ h: Harness; record: string }> {
  const record = path.join(tmp, 'requests.jsonl');
  const harness = await Harness.start({
    painter: 'engine',
    painterModule: RECORDING_PAINTER,
    painterExtra: { record },
    ...o,
    env: { ...QUICK, LORA_DIR: loraDir, ...o.env },
  });
  return { h: harness, record };
}

describe('styles on Discord', () => {
  it('/styles lists every style with its base model and trigger words, privately', async () => {
    const { dir } = styleDir();
    h = await Harness.start({ env: { LORA_DIR: dir } });
    const ix = h.fake.slashCommand(h.users.alice, h.channel.id, 'styles');
    const answer = await h.answered(ix);
    expect(answer.flags & 64).toBe(64);
    expect(answer.content).toMatch(/Styles\*\* \(2\)/);
    expect(answer.content).toMatch(/\*\*ink\*\*.*trigger words: ink drawing/);
    expect(answer.content).toMatch(/\*\*watercolor\*\* — for flux1 · trigger words: wc style, paint splash/);
  });

  it('a LORA_DIR that cannot be read: /styles says so without server paths, and /imagine without a style still works', async () => {
    // It existed when the bot started (start-up checks that), then went away: an unmounted disk, say.
    const { dir } = styleDir('gone');
    h = await Harness.start({ env: { LORA_DIR: dir } });
    rmSync(dir, { recursive: true });
    const answer = await h.answered(h.fake.slashCommand(h.users.alice, h.channel.id, 'styles'));
    expect(answer.content).toMatch(/cannot list the styles right now; the bot's operator can see why in its log/);
    expect(answer.content).not.toContain(tmp);
    const { message } = await h.imagine(h.users.alice, 'a cat and a dog');
    expect(message.content).toMatch(/^🗺️ Layout for “a cat and a dog”/);
    expect(message.content).not.toMatch(/style/i);
    const styled = await h.imagine(h.users.alice, 'a cat', { style: 'watercolor' });
    expect(styled.message.content).toMatch(/cannot be used right now; the bot's operator can see why in its log/);
    expect(styled.message.content).not.toContain(tmp);
  });

  it('/styles without LORA_DIR says how to add styles', async () => {
    h = await Harness.start();
    const answer = await h.answered(h.fake.slashCommand(h.users.alice, h.channel.id, 'styles'));
    expect(answer.content).toMatch(/no styles yet.*LORA_DIR/);
  });

  it('autocomplete of /imagine style: matches what was typed in names and trigger words, at most 25 choices of at most 100 characters', async () => {
    const { dir } = styleDir();
    for (let i = 0; i < 30; i++)
      writeStyleFile(dir, `pastel-${String(i).padStart(2, '0')}-${'x'.repeat(90)}`, {
        seed: 10 + i,
        tags: { soft: 1 },
      });
    h = await Harness.start({ env: { LORA_DIR: dir } });
    const typed = async (text: string) => {
      const ix = h!.fake.autocomplete(h!.users.alice, h!.channel.id, 'imagine', 'style', text, { prompt: 'a cat' });
      await h!.fake.waitFor(() => ix.choices, 'autocomplete choices');
      expect(ix.ackMs).toBeLessThan(3000);
      return ix.choices!;
    };
    expect(await typed('wat')).toEqual([{ name: 'watercolor — wc style, paint splash · flux1', value: 'watercolor' }]);
    // A trigger word finds its style too.
    expect((await typed('ink draw')).map((c) => c.value)).toEqual(['ink']);
    const all = await typed('');
    expect(all).toHaveLength(25);
    for (const c of all) expect(c.name.length).toBeLessThanOrEqual(100);
    expect(await typed('no such thing')).toEqual([]);
  });

  it('/imagine with a style: the stored pass pins name, scale and SHA-256, the painter gets the file path, the result names the style', async () => {
    const { dir, watercolor } = styleDir();
    const r = await painting(dir);
    h = r.h;
    const { ix, message } = await h.imagine(h.users.alice, 'a black cat on the left and a white dog on the right', {
      steps: 1,
      style: 'watercolor',
      style_scale: 0.8,
    });
    expect(firstAnswer(ix)).toMatch(/Styles: watercolor ×0\.8 \(whole picture\)/);
    const done = await h.finished(message.id, 120_000);
    expect(done.content).toMatch(/^✅/);
    expect(done.content).toMatch(/Styles: watercolor ×0\.8/);
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(g.params.scene.loras).toEqual([{ name: 'watercolor', scale: 0.8 }]);
    const pass = g.params.passes![0]!;
    expect(pass.loras).toEqual([{ name: 'watercolor', scale: 0.8, sha256: sha256(watercolor) }]);
    expect(pass.HB_lora_list).toBeUndefined();
    const [request] = recorded(r.record);
    expect(request!.params.passes![0]!.loras).toEqual([{ name: watercolor, scale: 0.8, sha256: sha256(watercolor) }]);

    // The Layout button shows the styles; Reroll paints the same layout with the same styles and a new seed.
    const layout = await h.answered(h.fake.clickButton(h.users.alice, done.id, `layout:${g.id}`));
    expect(layout.content).toMatch(/Styles: watercolor ×0\.8 \(whole picture\)/);
    const again = await h.answered(h.fake.clickButton(h.users.alice, done.id, `reroll:${g.id}`));
    const rerolled = await h.finished(again.id, 120_000);
    const g2 = h.bot.store.generationForMessage(rerolled.id)!;
    expect(g2.params.seed).not.toBe(g.params.seed);
    expect(g2.params.passes![0]!.loras).toEqual(pass.loras);
    expect(recorded(r.record)[1]!.params.passes![0]!.loras![0]!.name).toBe(watercolor);
  });

  it('/imagine without a painter: the style is checked and stored as its file spells it, and shown with the layout', async () => {
    const { dir } = styleDir();
    h = await Harness.start({ env: { LORA_DIR: dir } });
    const { message } = await h.imagine(h.users.alice, 'a cat and a dog', { style: 'WaterColor' });
    expect(message.content).toMatch(/Styles: watercolor \(whole picture\)/);
    expect(h.bot.store.generationForMessage(message.id)!.params.scene.loras).toEqual([
      { name: 'watercolor', scale: 1 },
    ]);
    const scaleOnly = await h.imagine(h.users.alice, 'a cat', { style_scale: 0.5 });
    expect(scaleOnly.message.content).toMatch(/`style_scale` needs a `style`/);
  });

  it('the style reaches the picture: same seed, a style at scale 2 paints other pixels, at scale 0 the same ones', async () => {
    const { dir } = styleDir();
    const r = await painting(dir);
    h = r.h;
    const paint = async (o: Record<string, string | number>) => {
      const { message } = await h!.imagine(h!.users.alice, 'a black cat on the left and a white dog on the right', {
        steps: 1,
        seed: 7,
        ...o,
      });
      const done = await h!.finished(message.id, 120_000);
      expect(done.content).toMatch(/^✅/);
      return h!.fake.attachmentBytes(done.attachments[0]!);
    };
    const plain = await paint({});
    expect((await paint({ style: 'watercolor', style_scale: 2 })).equals(plain)).toBe(false);
    expect((await paint({ style: 'watercolor', style_scale: 0 })).equals(plain)).toBe(true);
  });

  it('/imagine with an unknown style is refused with the names there are, and nothing is queued', async () => {
    const { dir } = styleDir();
    const r = await painting(dir);
    h = r.h;
    const { message } = await h.imagine(h.users.alice, 'a cat', { steps: 1, style: 'oil' });
    expect(message.content).toMatch(/no style "oil"; the styles are: ink, watercolor/);
    expect(await h.bot.queue.stats()).toMatchObject({ queued: 0, running: 0 });
    expect(recorded(r.record)).toEqual([]);
  });

  it('/layout with styles per region: HB_lora_list is parallel to the boxes, hashes pinned, paths on the painter', async () => {
    const { dir, watercolor, ink } = styleDir();
    const r = await painting(dir);
    h = r.h;
    const ix = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', {
      regions: 'a cat @ 0 20 50 80 <watercolor:0.8>; a dog @ 50 20 50 80; a bird @ 30 0 40 20 <ink> <watercolor:-1>',
      steps: 1,
    });
    const message = await h.answered(ix);
    expect(firstAnswer(ix)).toMatch(/watercolor ×0\.8 on a cat · ink on a bird · watercolor ×-1 on a bird/);
    await h.finished(message.id, 120_000);
    const g = h.bot.store.generationForMessage(message.id)!;
    const pass = g.params.passes![0]!;
    expect(pass.HB_prompt_list).toEqual(['a cat', 'a dog', 'a bird']);
    expect(pass.HB_lora_list).toEqual([
      [{ name: 'watercolor', scale: 0.8, sha256: sha256(watercolor) }],
      [],
      [
        { name: 'ink', scale: 1, sha256: sha256(ink) },
        { name: 'watercolor', scale: -1, sha256: sha256(watercolor) },
      ],
    ]);
    expect(pass.loras).toBeUndefined();
    const painted = recorded(r.record)[0]!.params.passes![0]!;
    expect(painted.HB_lora_list!.map((l) => l.map((s) => s.name))).toEqual([[watercolor], [], [ink, watercolor]]);

    // A Scene JSON file's styles: names only (a path is refused), and a hash in it is replaced by this bot's.
    const sceneJson = (loras: unknown) =>
      Buffer.from(
        JSON.stringify({
          width: 128,
          height: 128,
          prompt: 'a cat',
          loras,
          regions: [{ id: 'r1', label: 'a cat', prompt: 'a cat', box: { x: 0, y: 0, w: 0.5, h: 1 } }],
        }),
      );
    const fromFile = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', {
      file: { filename: 'scene.json', data: sceneJson([{ name: 'ink', scale: 0.5, sha256: 'f'.repeat(64) }]) },
      steps: 1,
    });
    const fileMessage = await h.answered(fromFile);
    await h.finished(fileMessage.id, 120_000);
    const g2 = h.bot.store.generationForMessage(fileMessage.id)!;
    expect(g2.params.passes![0]!.loras).toEqual([{ name: 'ink', scale: 0.5, sha256: sha256(ink) }]);
    const withPath = await h.answered(
      h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', {
        file: { filename: 'scene.json', data: sceneJson([{ name: '/etc/ink.safetensors', scale: 1 }]) },
      }),
    );
    expect(withPath.content).toMatch(/Give a style by its name \(see \/styles\), not a file path/);
  });

  it('/layout refuses a style scale outside −4…4 and an unclosed style, privately', async () => {
    const { dir } = styleDir();
    h = await Harness.start({ env: { LORA_DIR: dir } });
    const a = await h.answered(
      h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', { regions: 'a cat @ left <watercolor:5>' }),
    );
    expect(a.flags & 64).toBe(64);
    expect(a.content).toMatch(/scale of the style "watercolor" must be a number from -4 to 4 \(got "5"\)/);
    const b = await h.answered(
      h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', { regions: 'a cat @ left <watercolor' }),
    );
    expect(b.content).toMatch(/both angle brackets/);
  });

  it('a reply "make the left cat a watercolor" repaints that region with the style; the parent\'s styles stay', async () => {
    const { dir, watercolor, ink } = styleDir();
    const r = await painting(dir);
    h = r.h;
    const ix = h.fake.slashCommand(h.users.alice, h.channel.id, 'layout', {
      regions: 'a black cat @ 0 20 45 80; a white cat @ 55 20 45 80 <ink:0.5>',
      steps: 2,
    });
    const first = await h.finished((await h.answered(ix)).id, 120_000);
    const parent = h.bot.store.generationForMessage(first.id)!;
    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the left cat a watercolor', {
      replyTo: first.id,
    });
    const answer = await h.replyTo(reply.id);
    expect(firstReply(reply.id)).toMatch(/Repainting a black cat/);
    expect(firstReply(reply.id)).toMatch(/Styles: watercolor on a black cat · ink ×0\.5 on a white cat/);
    const done = await h.finished(answer.id, 120_000);
    expect(done.content).toMatch(/^✅ Repainted a black cat/);
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(g).toMatchObject({ kind: 'repaint', parentId: parent.id, status: 'done' });
    expect(g.params.scene.regions.map((x) => x.loras)).toEqual([
      [{ name: 'watercolor', scale: 1 }],
      [{ name: 'ink', scale: 0.5 }],
    ]);
    const pass = g.params.passes!.at(-1)!;
    // The main pass re-runs the parent exactly: its per-box styles are the parent's, the new one is the repaint's.
    expect(pass.HB_lora_list).toEqual(parent.params.passes![0]!.HB_lora_list);
    expect(pass.HB_lora_list).toEqual([[], [{ name: 'ink', scale: 0.5, sha256: sha256(ink) }]]);
    expect(pass.Repainting_loras).toEqual([{ name: 'watercolor', scale: 1, sha256: sha256(watercolor) }]);
    expect(pass.Repainting_HB_prompt).toBe('a black cat');
    const repaintJob = recorded(r.record).find((q) => q.kind === 'repaint')!;
    expect(repaintJob.params.passes!.at(-1)!.Repainting_loras![0]!.name).toBe(watercolor);
    // The parent's pass travels with the job too, resolved the same way (the painter re-runs it).
    expect(repaintJob.parent!.params.passes![0]!.HB_lora_list![1]![0]!.name).toBe(ink);

    // A later reply that changes only the label keeps the region's style.
    const reply2 = h.fake.userMessage(h.users.alice, h.channel.id, 'make the white cat orange', { replyTo: done.id });
    const answer2 = await h.replyTo(reply2.id);
    await h.finished(answer2.id, 120_000);
    const g2 = h.bot.store.generationForMessage(answer2.id)!;
    expect(g2.params.scene.regions[1]).toMatchObject({ label: 'an orange cat', loras: [{ name: 'ink', scale: 0.5 }] });
    expect(g2.params.passes!.at(-1)!.Repainting_loras).toEqual([{ name: 'ink', scale: 0.5, sha256: sha256(ink) }]);
  });

  it('a worker without the style fails the job naming the style, and never paints', async () => {
    const { dir } = styleDir();
    const workerDir = path.join(tmp, 'worker-styles');
    writeStyleFile(workerDir, 'ink', { seed: 2, tags: { 'ink drawing': 3 } });
    const r = await painting(dir, { workerOptions: { loraDir: workerDir } });
    h = r.h;
    const { message } = await h.imagine(h.users.alice, 'a cat', { steps: 1, style: 'watercolor' });
    const done = await h.finished(message.id, 60_000);
    expect(done.content).toMatch(/^⚠️ I could not paint/);
    expect(done.content).toMatch(/cannot paint the style "watercolor"/);
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(g.status).toBe('failed');
    expect(g.error).toMatch(/has no watercolor\.safetensors \(it has: ink\)/);
    expect(recorded(r.record)).toEqual([]);
  });

  it('a worker whose file of the style is damaged says so (not that it is missing), and never paints', async () => {
    const { dir } = styleDir();
    const workerDir = path.join(tmp, 'worker-styles');
    const broken = writeStyleFile(workerDir, 'watercolor');
    truncateSync(broken, 100);
    const r = await painting(dir, { workerOptions: { loraDir: workerDir } });
    h = r.h;
    const { message } = await h.imagine(h.users.alice, 'a cat', { steps: 1, style: 'watercolor' });
    const done = await h.finished(message.id, 60_000);
    expect(done.content).toMatch(/cannot paint the style "watercolor"/);
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(g.error).toMatch(/is not a usable LoRA file: .*truncated/);
    expect(g.error).not.toMatch(/has no watercolor\.safetensors/);
    expect(recorded(r.record)).toEqual([]);
  });

  it("a worker whose file differs from the bot's fails the job: the style and the differing hashes are named", async () => {
    const { dir } = styleDir();
    const workerDir = path.join(tmp, 'worker-styles');
    writeStyleFile(workerDir, 'watercolor', { seed: 99 });
    const r = await painting(dir, { workerOptions: { loraDir: workerDir } });
    h = r.h;
    const { message } = await h.imagine(h.users.alice, 'a cat', { steps: 1, style: 'watercolor' });
    const done = await h.finished(message.id, 60_000);
    expect(done.content).toMatch(/^⚠️/);
    const g = h.bot.store.generationForMessage(done.id)!;
    expect(g.error).toMatch(/file for the style "watercolor" .* differs from the one the request was made with/);
    expect(recorded(r.record)).toEqual([]);
  });
});
