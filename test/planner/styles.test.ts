// Styles in the planner: the offline editor and planner find style names in what people write; the LLM planner and
// editor get the style list and a schema with style fields (only when there are styles), and a name the LLM
// invents is dropped with a warning.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { planEdit } from '../../src/planner/editor.ts';
import { LlmClient } from '../../src/planner/llm.ts';
import { planScene } from '../../src/planner/plan.ts';
import type { StyleChoice } from '../../src/planner/styles.ts';
import sharp from 'sharp';
import { renderLayout } from '../../src/planner/layout-image.ts';
import { applyEdit } from '../../src/scene/edit.ts';
import type { Scene } from '../../src/scene/schema.ts';
import {
  startFakeOpenAI,
  type FakeOpenAI,
  type FakeRequest,
  type FakeResponse,
  editorChange,
} from '../support/fake-openai.ts';

const styles: StyleChoice[] = [
  { name: 'watercolor', description: 'soft washes of colour', triggerWords: ['wc style'] },
  { name: 'ink', triggerWords: ['ink drawing'] },
  { name: 'pixel-art', triggerWords: [] },
];

const cats: Scene = {
  width: 1024,
  height: 1024,
  prompt: 'a black cat and a white dog',
  background: '',
  exclude: [],
  regions: [
    { id: 'r1', label: 'a black cat', prompt: 'a black cat', box: { x: 0.05, y: 0.3, w: 0.4, h: 0.5 } },
    { id: 'r2', label: 'a white dog', prompt: 'a white dog', box: { x: 0.55, y: 0.3, w: 0.4, h: 0.5 } },
  ],
};

const offlineEdit = async (instruction: string, scene = cats) =>
  (await planEdit(scene, instruction, { offline: true, styles })).edit;

describe('offline editor', () => {
  it.each([
    ['make the cat a watercolor', 'r1', 'watercolor'],
    ['make the left one a watercolor', 'r1', 'watercolor'],
    ['paint the dog in ink style', 'r2', 'ink'],
    ['the dog as an ink drawing', 'r2', 'ink'],
    ['render the cat in the style of pixel art', 'r1', 'pixel-art'],
    ['Make the dog Watercolor.', 'r2', 'watercolor'],
  ])('"%s" gives %s the style %s', async (text, id, name) => {
    const edit = await offlineEdit(text);
    expect(edit).toMatchObject({ kind: 'change', update: [{ id, loras: [{ name, scale: 1 }] }] });
    if (edit.kind !== 'change') throw new Error('not a change');
    // Only the style changes: the region is repainted, its label and prompt stay.
    const applied = applyEdit(cats, edit);
    expect(applied.repaint.map((r) => r.id)).toEqual([id]);
    expect(applied.scene.regions.find((r) => r.id === id)!.label).toBe(cats.regions.find((r) => r.id === id)!.label);
  });

  it('"make everything watercolor" styles the whole picture; "remove the style from the cat" clears the cat’s', async () => {
    expect(await offlineEdit('make everything watercolor')).toMatchObject({
      kind: 'change',
      update: [],
      loras: [{ name: 'watercolor', scale: 1 }],
    });
    const styled: Scene = {
      ...cats,
      regions: [{ ...cats.regions[0]!, loras: [{ name: 'ink', scale: 1 }] }, cats.regions[1]!],
    };
    const cleared = await offlineEdit('remove the style from the cat', styled);
    expect(cleared).toMatchObject({ kind: 'change', update: [{ id: 'r1', loras: [] }] });
  });

  it('"make the cat orange in ink style" changes the cat and gives it the style, in one repaint', async () => {
    const edit = await offlineEdit('make the cat orange in ink style');
    expect(edit).toMatchObject({
      kind: 'change',
      update: [{ id: 'r1', label: 'an orange cat', loras: [{ name: 'ink', scale: 1 }] }],
    });
  });

  it('asks which one when two regions fit, and leaves instructions without a style name to the other rules', async () => {
    const two: Scene = {
      ...cats,
      regions: [cats.regions[0]!, { ...cats.regions[1]!, label: 'a white cat', prompt: 'a white cat' }],
    };
    expect((await offlineEdit('make the cat a watercolor', two)).kind).toBe('clarify');
    const plain = await offlineEdit('make the cat orange');
    expect(plain).toMatchObject({ kind: 'change', update: [{ id: 'r1' }] });
    if (plain.kind === 'change') expect(plain.update[0]).not.toHaveProperty('loras');
  });
});

describe('layout picture', () => {
  it('the legend names a region’s styles; the boxes are drawn as without them', async () => {
    const styled: Scene = {
      ...cats,
      regions: [{ ...cats.regions[0]!, loras: [{ name: 'ink', scale: 0.5 }] }, cats.regions[1]!],
    };
    const raw = async (s: Scene) =>
      sharp(await renderLayout(s))
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
    const [a, b] = [await raw(cats), await raw(styled)];
    expect(b.info).toEqual(a.info);
    const row = a.info.width * 3;
    // The picture (512 rows) is the same; the legend below it differs.
    expect(b.data.subarray(0, 512 * row).equals(a.data.subarray(0, 512 * row))).toBe(true);
    expect(b.data.subarray(512 * row).equals(a.data.subarray(512 * row))).toBe(false);
  });
});

describe('offline planner', () => {
  it('"in the style of <name>" and "<name> style" style the picture; the rest is planned as usual', async () => {
    const r = await planScene('a cat and a dog in the style of watercolor', { offline: true, styles });
    expect(r.scene.loras).toEqual([{ name: 'watercolor', scale: 1 }]);
    expect(r.scene.regions.map((x) => x.label)).toEqual(['a cat', 'a dog']);
    const s = await planScene('an ink style fox in a forest', { offline: true, styles });
    expect(s.scene.loras).toEqual([{ name: 'ink', scale: 1 }]);
    expect(JSON.stringify(s.scene.regions)).not.toMatch(/ink/);
    // Without that style, the words are just words.
    const t = await planScene('a cat and a dog in the style of watercolor', { offline: true });
    expect(t.scene).not.toHaveProperty('loras');
  });
});

let fake: FakeOpenAI;
let respond: (req: FakeRequest) => FakeResponse;
beforeAll(async () => {
  fake = await startFakeOpenAI({ respond: (req) => respond(req) });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.requests.length = 0;
});
const llm = () =>
  new LlmClient({
    baseUrl: fake.url,
    apiKey: 'test-key-abcdefgh',
    model: 'fake-model',
    timeoutMs: 3000,
    maxRetries: 0,
  });

function schemaOf(req: FakeRequest): string {
  return JSON.stringify((req.body!.response_format as { json_schema: unknown }).json_schema);
}
function systemOf(req: FakeRequest): string {
  return (req.body!.messages as { role: string; content: string }[])[0]!.content;
}

describe('LLM planner and editor with styles', () => {
  const plan = {
    prompt: 'A fox in a snowy forest.',
    background: 'a snowy forest',
    exclude: [],
    aspect: null,
    styles: [{ name: 'oil-painting', scale: 1 }],
    regions: [
      {
        label: 'a red fox',
        prompt: 'A red fox.',
        box: { x: 0.2, y: 0.3, w: 0.5, h: 0.5 },
        styles: [{ name: 'watercolor', scale: 0.7 }],
      },
    ],
  };

  it('the planner gets the style list and a schema with styles; known names are kept, an invented one is dropped with a warning', async () => {
    respond = () => ({ json: plan });
    const r = await planScene('a watercolor fox in a snowy forest', { llm: llm(), styles });
    expect(r.source).toBe('llm');
    expect(r.scene.regions[0]!.loras).toEqual([{ name: 'watercolor', scale: 0.7 }]);
    expect(r.scene).not.toHaveProperty('loras');
    expect(r.warnings).toContain('the LLM gave the picture the style "oil-painting", which does not exist: left out');
    const req = fake.requests[0]!;
    expect(systemOf(req)).toMatch(
      /- watercolor: soft washes of colour; trigger words: wc style\n- ink: trigger words: ink drawing/,
    );
    expect(schemaOf(req)).toMatch(/"styles"/);
  });

  it('without styles the planner’s request has no style fields at all', async () => {
    const { styles: _s, ...bare } = plan;
    respond = () => ({ json: { ...bare, regions: bare.regions.map(({ styles: _r, ...x }) => x) } });
    const r = await planScene('a fox in a snowy forest', { llm: llm() });
    expect(r.scene.regions[0]).not.toHaveProperty('loras');
    expect(schemaOf(fake.requests[0]!)).not.toMatch(/styles/);
    expect(systemOf(fake.requests[0]!)).not.toMatch(/Styles:/);
  });

  it('the editor sets a region’s style from an update with only styles, and sees each region’s styles in the layout', async () => {
    const styled: Scene = {
      ...cats,
      regions: [cats.regions[0]!, { ...cats.regions[1]!, loras: [{ name: 'ink', scale: 1 }] }],
    };
    respond = () => ({
      json: editorChange({
        references: [{ text: 'the left cat', ids: ['r1'] }],
        update: [{ id: 'r1', label: null, prompt: null, box: null, styles: [{ name: 'watercolor', scale: null }] }],
        styles: null,
      }),
    });
    const r = await planEdit(styled, 'make the left cat a watercolor', { llm: llm(), styles });
    expect(r.source).toBe('llm');
    expect(r.edit).toMatchObject({ kind: 'change', update: [{ id: 'r1', loras: [{ name: 'watercolor', scale: 1 }] }] });
    expect(r.edit).not.toHaveProperty('loras');
    const user = (fake.requests[0]!.body!.messages as { content: string }[]).at(-1)!.content;
    expect(user).toMatch(/"id":"r2".*"styles":\[\{"name":"ink","scale":1\}\]/);
  });

  it('a misspelt style from the editor changes nothing and is warned about; an empty list clears the style', async () => {
    const styled: Scene = { ...cats, regions: [{ ...cats.regions[0]!, loras: [{ name: 'ink', scale: 1 }] }] };
    const reply = (styles: { name: string; scale: null }[]) => () => ({
      json: editorChange({
        references: [{ text: 'the cat', ids: ['r1'] }],
        update: [{ id: 'r1', label: null, prompt: null, box: null, styles }],
        styles: styles.length ? styles : null,
      }),
    });
    respond = reply([{ name: 'watercolour', scale: null }]);
    const typo = await planEdit(styled, 'make the cat a watercolour', { llm: llm(), styles });
    expect(typo.edit).toMatchObject({ kind: 'change', update: [{ id: 'r1' }] });
    expect(typo.edit.kind === 'change' && typo.edit.update[0]).not.toHaveProperty('loras');
    expect(typo.edit).not.toHaveProperty('loras');
    expect(typo.warnings).toContain('the LLM gave region r1 the style "watercolour", which does not exist: left out');
    respond = reply([]);
    const cleared = await planEdit(styled, 'remove the style from the cat', { llm: llm(), styles });
    expect(cleared.edit).toMatchObject({ kind: 'change', update: [{ id: 'r1', loras: [] }] });
  });
});
