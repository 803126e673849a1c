// The bot with an LLM planner and styles: the planner and the editor are sent the styles of LORA_DIR with their
// trigger words; a style the LLM gives a region is stored on that region, one it invents is left out, and a reply
// the LLM turns into a style change repaints only that region.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type FakeOpenAI, type FakeRequest, editorChange } from '../support/fake-openai.ts';
import { Harness } from './harness.ts';
import { writeStyleFile } from './style-files.ts';

let h: Harness | undefined;
let llm: FakeOpenAI | undefined;
let tmp: string | undefined;
afterEach(async () => {
  await h?.close();
  await llm?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  h = llm = tmp = undefined;
});

const plan = {
  prompt: 'A black cat and a white cat on a sofa.',
  background: 'a sofa',
  exclude: [],
  aspect: null,
  styles: [{ name: 'made-up', scale: 1 }],
  regions: [
    {
      label: 'a black cat',
      prompt: 'a black cat',
      box: { x: 0.05, y: 0.35, w: 0.4, h: 0.5 },
      styles: [{ name: 'watercolor', scale: 0.9 }],
    },
    { label: 'a white cat', prompt: 'a white cat', box: { x: 0.55, y: 0.35, w: 0.4, h: 0.5 }, styles: [] },
  ],
};
const restyle = editorChange({
  references: [{ text: 'the white cat', ids: ['r2'] }],
  update: [{ id: 'r2', label: null, prompt: null, box: null, styles: [{ name: 'ink', scale: null }] }],
  styles: null,
});

const system = (r: FakeRequest) => ((r.body?.messages ?? []) as { role: string; content: string }[])[0]!.content;
const isEdit = (r: FakeRequest) => JSON.stringify(r.body?.messages ?? []).includes('<layout>');

describe('styles with the LLM planner', () => {
  it('plans a region with a style, drops an invented one, and a reply restyles the other region', async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'sw-styles-llm-'));
    const dir = path.join(tmp, 'styles');
    writeStyleFile(dir, 'watercolor', { tags: { 'wc style': 4 } });
    writeStyleFile(dir, 'ink', { seed: 2 });
    llm = await startFakeOpenAI({ respond: (r) => ({ json: isEdit(r) ? restyle : plan }) });
    h = await Harness.start({
      env: { OPENAI_BASE_URL: llm.url, OPENAI_API_KEY: 'test-key', OPENAI_MODEL: 'fake-model', LORA_DIR: dir },
    });
    const { message } = await h.imagine(h.users.alice, 'a watercolor black cat and a white cat on a sofa');
    expect(system(llm.requests[0]!)).toMatch(/- ink\n- watercolor: trigger words: wc style/);
    const g = h.bot.store.generationForMessage(message.id)!;
    expect(g.params.scene.regions.map((r) => r.loras)).toEqual([[{ name: 'watercolor', scale: 0.9 }], undefined]);
    expect(g.params.scene).not.toHaveProperty('loras');
    expect(message.content).toMatch(/Styles: watercolor ×0\.9 on a black cat/);

    const reply = h.fake.userMessage(h.users.alice, h.channel.id, 'make the white cat an ink drawing', {
      replyTo: message.id,
    });
    const answer = await h.replyTo(reply.id);
    expect(system(llm.requests.at(-1)!)).toMatch(/Styles: this painter has trained styles/);
    const g2 = h.bot.store.generationForMessage(answer.id)!;
    expect(g2.params.scene.regions.map((r) => r.loras)).toEqual([
      [{ name: 'watercolor', scale: 0.9 }],
      [{ name: 'ink', scale: 1 }],
    ]);
    expect(g2.params.scene.regions[1]!.label).toBe('a white cat');
  });
});
