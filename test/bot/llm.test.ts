// The bot with an LLM planner: the real openai SDK against the fake OpenAI-compatible server, the real
// discord.js client against the fake Discord. Plans, edits, clarifying questions with their history, and
// the offline fallback when the LLM does not answer.
import { afterEach, describe, expect, it } from 'vitest';
import {
  startFakeOpenAI,
  type FakeOpenAI,
  type FakeRequest,
  type FakeResponse,
  editorChange,
} from '../support/fake-openai.ts';
import { Harness } from './harness.ts';

let h: Harness | undefined;
let llm: FakeOpenAI | undefined;
afterEach(async () => {
  await h?.close();
  await llm?.close();
  h = undefined;
  llm = undefined;
});

const plan = {
  prompt: 'Two cats sitting on a sofa, the left one black and the right one white.',
  background: 'a cosy living room with a sofa',
  exclude: [],
  aspect: null,
  regions: [
    { label: 'a black cat', prompt: 'a black cat sitting', box: { x: 0.05, y: 0.35, w: 0.4, h: 0.5 } },
    { label: 'a white cat', prompt: 'a white cat sitting', box: { x: 0.55, y: 0.35, w: 0.4, h: 0.5 } },
  ],
};
const noEdit = editorChange();

function lastUser(req: FakeRequest): string {
  const messages = (req.body?.messages ?? []) as { role: string; content: string }[];
  return messages.filter((m) => m.role === 'user').at(-1)?.content ?? '';
}

function isEditRequest(req: FakeRequest): boolean {
  return lastUser(req).includes('<layout>');
}

async function start(respond: (req: FakeRequest) => FakeResponse, env: Record<string, string> = {}): Promise<Harness> {
  llm = await startFakeOpenAI({ respond });
  h = await Harness.start({
    env: { OPENAI_BASE_URL: llm.url, OPENAI_API_KEY: 'test-key', OPENAI_MODEL: 'fake-model', ...env },
  });
  return h;
}

describe('bot with an LLM planner', () => {
  it('plans through the LLM (any language in, English prompts out) and records which planner made the layout', async () => {
    await start(() => ({ json: plan }));
    const { message } = await h!.imagine(
      h!.users.alice,
      'deux chats sur un canapé, le noir à gauche, le blanc à droite',
    );
    expect(message.attachments).toHaveLength(1);
    const g = h!.bot.store.generationForMessage(message.id)!;
    expect(g.planner).toBe('llm:fake-model');
    expect(g.params.scene.regions.map((r) => r.label)).toEqual(['a black cat', 'a white cat']);
    expect(JSON.stringify(llm!.requests[0]!.body)).toContain('deux chats');
  });

  it('a clarifying question from the editor is asked; the answer is sent with the history', async () => {
    await start((req) => {
      if (!isEditRequest(req)) return { json: plan };
      if (/<instruction>\s*make the cat orange\s*<\/instruction>/.test(lastUser(req)))
        return {
          json: {
            ...noEdit,
            kind: 'clarify',
            question: 'Which cat: the black one on the left or the white one on the right?',
          },
        };
      return {
        json: {
          ...noEdit,
          references: [{ text: 'the left one', ids: ['r1'] }],
          update: [{ id: 'r1', label: 'an orange cat', prompt: 'an orange cat sitting', box: null }],
        },
      };
    });
    const { message } = await h!.imagine(h!.users.alice, 'two cats on a sofa');
    const first = h!.fake.userMessage(h!.users.alice, h!.channel.id, 'make the cat orange', { replyTo: message.id });
    const question = await h!.replyTo(first.id);
    expect(question.content).toMatch(/^❓ Which cat/);
    await h!.fake.waitFor(() => h!.bot.store.messageLink(question.id), 'the question to be linked');
    const answer = h!.fake.userMessage(h!.users.alice, h!.channel.id, 'the left one', { replyTo: question.id });
    const changed = await h!.replyTo(answer.id);
    expect(changed.attachments).toHaveLength(1);
    const g = h!.bot.store.generationForMessage(changed.id)!;
    expect(g.params.scene.regions[0]!.label).toBe('an orange cat');
    const last = JSON.stringify(llm!.requests.at(-1)!.body?.messages);
    expect(last).toContain('make the cat orange');
    expect(last).toContain('Which cat');
  });

  it('falls back to the offline planner when the LLM does not answer, and says so', async () => {
    await start(() => ({ hang: true }), { OPENAI_TIMEOUT_MS: '1000' });
    const { message } = await h!.imagine(h!.users.alice, 'a red apple on the left and a green pear on the right');
    expect(message.content).toMatch(/offline planner/);
    expect(h!.bot.store.generationForMessage(message.id)!.planner).toBe('offline');
  });

  it('a request cut off by a restart is not left "thinking…": the next process tells the user', async () => {
    await start(() => ({ hang: true }), { OPENAI_TIMEOUT_MS: '600000' });
    const ix = h!.fake.slashCommand(h!.users.alice, h!.channel.id, 'imagine', { prompt: 'a quiet harbour at night' });
    await h!.fake.waitFor(() => ix.ackType === 5 && llm!.requests.length > 0, 'the planner to be waiting on the LLM');
    await h!.restartBot();
    const original = await h!.fake.waitFor(() => {
      const m = h!.fake.messages.get(ix.originalMessageId!);
      return m?.content ? m : undefined;
    }, 'the placeholder to be replaced');
    expect(original.content).toMatch(/restarted while working on this/);
  });
});
