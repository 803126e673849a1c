import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRgb8, repaintPixels } from '../../src/engine/pipeline/image.ts';
import { openStore } from '../../src/store/index.ts';
import { fixture, repoRoot } from '../support/fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-repaint-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  return cliWith({}, ...args);
}

function cliWith(extraEnv: Record<string, string>, ...args: string[]) {
  const env = { ...process.env, EXECUTION_PROVIDER: 'cpu', ORT_THREADS: '2', LOG_LEVEL: 'silent', ...extraEnv };
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'scenewright.js'), ...args], {
    cwd: tmp,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/** Largest channel difference outside the dilated mask of `dir`'s mask.png, and pixels changed inside. */
async function diff(a: string, b: string, maskDir: string) {
  const area = await repaintPixels(path.join(maskDir, 'mask.png'), 128, 128);
  const [x, y] = [await readRgb8(a), await readRgb8(b)];
  let outside = 0;
  let inside = 0;
  for (let p = 0; p < area.length; p++) {
    const d = Math.max(...[0, 1, 2].map((c) => Math.abs(x.data[p * 3 + c]! - y.data[p * 3 + c]!)));
    if (area[p]) inside += d > 0 ? 1 : 0;
    else outside = Math.max(outside, d);
  }
  return { outside, inside };
}

describe('scenewright generate --scene / repaint --from', () => {
  it('generate --scene, then an edit of it and an edit of the edit: only the edited regions change', async () => {
    const scene = {
      width: 128,
      height: 128,
      prompt: 'a red apple and a glass of lemonade on a wooden table',
      background: 'a wooden table',
      exclude: [],
      regions: [
        { id: 'r1', label: 'a red apple', prompt: 'a shiny red apple', box: { x: 0, y: 0.25, w: 0.5, h: 0.5 } },
        {
          id: 'r2',
          label: 'a glass of lemonade',
          prompt: 'a tall glass of lemonade',
          box: { x: 0.5, y: 0.25, w: 0.5, h: 0.5 },
        },
      ],
    };
    writeFileSync(path.join(tmp, 'scene.json'), JSON.stringify(scene));
    const m = fixture('tiny-flux-dev');
    const g1 = cli(
      'generate',
      '--model',
      m,
      '--scene',
      'scene.json',
      '--steps',
      '4',
      '--seed',
      '3',
      '--out',
      'g1.png',
      '--save-generation',
      'g1',
    );
    expect(g1.status, g1.stderr).toBe(0);
    const g2 = cli(
      'repaint',
      '--model',
      m,
      '--from',
      'g1',
      '--edit',
      'change the lemonade to a blue cup',
      '--out',
      'g2.png',
      '--save-generation',
      'g2',
    );
    expect(g2.status, g2.stderr).toBe(0);
    expect(g2.stderr).toMatch(/repainting r2: "a blue cup"/);
    expect(g2.stderr).toMatch(/re-ran the parent from its noise \(exact\)/);
    const g3 = cli(
      'repaint',
      '--model',
      m,
      '--from',
      'g2',
      '--edit',
      'make the apple green',
      '--out',
      'g3.png',
      '--save-generation',
      'g3',
    );
    expect(g3.status, g3.stderr).toBe(0);
    expect(g3.stderr).toMatch(/replayed the parent's stored trajectory/);
    const d2 = await diff(path.join(tmp, 'g2.png'), path.join(tmp, 'g1.png'), path.join(tmp, 'g2'));
    const d3 = await diff(path.join(tmp, 'g3.png'), path.join(tmp, 'g2.png'), path.join(tmp, 'g3'));
    expect([d2.outside, d3.outside]).toEqual([0, 0]);
    expect(d2.inside).toBeGreaterThan(500);
    expect(d3.inside).toBeGreaterThan(500);
    const nothing = cli('repaint', '--model', m, '--from', 'g1', '--out', 'x.png');
    expect(nothing.status).toBe(2);
    expect(nothing.stderr).toMatch(/what should change\? Give --edit/);
  });

  it('an edit of two regions repaints them one after another, each with its own prompt, as the bot does', async () => {
    const scene = {
      width: 128,
      height: 128,
      prompt: 'a red apple and a glass of lemonade on a wooden table',
      background: 'a wooden table',
      exclude: [],
      regions: [
        { id: 'r1', label: 'a red apple', prompt: 'a shiny red apple', box: { x: 0, y: 0.25, w: 0.5, h: 0.5 } },
        {
          id: 'r2',
          label: 'a glass of lemonade',
          prompt: 'a tall glass of lemonade',
          box: { x: 0.5, y: 0.25, w: 0.5, h: 0.5 },
        },
      ],
    };
    writeFileSync(path.join(tmp, 'two.json'), JSON.stringify(scene));
    const m = fixture('tiny-flux-dev');
    const g = cli(
      'generate',
      '--model',
      m,
      '--scene',
      'two.json',
      '--steps',
      '2',
      '--seed',
      '4',
      '--out',
      'two.png',
      '--save-generation',
      'two',
    );
    expect(g.status, g.stderr).toBe(0);
    const both = cli(
      'repaint',
      '--model',
      m,
      '--from',
      'two',
      '--edit',
      'make the apple green and change the lemonade to a blue cup',
      '--out',
      'both.png',
    );
    expect(both.status, both.stderr).toBe(0);
    expect(both.stderr).toMatch(/repainting r1: "a green apple"\nrepainting r2: "a blue cup"/);
    const [a, b] = [await readRgb8(path.join(tmp, 'two.png')), await readRgb8(path.join(tmp, 'both.png'))];
    // Outside both boxes (dilated by a token) nothing moves; inside each, the pass bound to its label painted.
    const changed = (y0: number, y1: number, x0: number, x1: number) => {
      let n = 0;
      for (let y = y0; y < y1; y++)
        for (let x = x0; x < x1; x++)
          for (let c = 0; c < 3; c++) n += a.data[(y * 128 + x) * 3 + c] !== b.data[(y * 128 + x) * 3 + c] ? 1 : 0;
      return n;
    };
    expect(changed(0, 16, 0, 128) + changed(112, 128, 0, 128)).toBe(0);
    expect(changed(32, 96, 0, 64)).toBeGreaterThan(500);
    expect(changed(32, 96, 64, 128)).toBeGreaterThan(500);
  });

  it('refuses before loading any weights: an output format it cannot write, and a parent painted with another model', () => {
    const m = fixture('tiny-flux-dev');
    const gif = cli('generate', '--model', m, '--prompt', 'a cat', '--out', 'cat.gif');
    expect(gif.status).toBe(2);
    expect(gif.stderr).toMatch(/--out cat\.gif: write \.png, \.webp \(lossless\) or \.jpg\/\.jpeg/);
    expect(gif.stderr).not.toMatch(/loaded /);
    const jpg = cli(
      'generate',
      '--model',
      m,
      '--prompt',
      'a cat',
      '--steps',
      '1',
      '--width',
      '64',
      '--height',
      '64',
      '--out',
      'cat.jpg',
    );
    expect(jpg.status, jpg.stderr).toBe(0);
    expect([...readFileSync(path.join(tmp, 'cat.jpg')).subarray(0, 2)]).toEqual([0xff, 0xd8]);
    const other = cli(
      'repaint',
      '--model',
      fixture('tiny-flux-schnell'),
      '--from',
      'two',
      '--edit',
      'make the apple green',
      '--out',
      'x.png',
    );
    expect(other.status).toBe(1);
    expect(other.stderr).toMatch(/was painted with flux\.1-dev, and this model is flux\.1-schnell/);
    expect(other.stderr).not.toMatch(/loaded /);
    const nowhere = cli('generate', '--model', path.join(tmp, 'no-such-model'), '--prompt', 'a cat', '--out', 'x.png');
    expect(nowhere.status).toBe(2);
    expect(nowhere.stderr).toMatch(/model folder .*no-such-model does not exist: point --model/);
    const vague = cli('repaint', '--model', m, '--from', 'two', '--edit', 'make the elephant blue', '--out', 'x.png');
    expect(vague.status).toBe(1);
    expect(vague.stderr).not.toMatch(/loaded /);
  });

  it('repaint --from <generation id> repaints a generation the bot stored in DATA_DIR, as from its folder', async () => {
    const scene = {
      width: 128,
      height: 128,
      prompt: 'a cat and a dog',
      background: 'a garden',
      exclude: [],
      regions: [
        { id: 'r1', label: 'a cat', prompt: 'a grey cat', box: { x: 0, y: 0.25, w: 0.5, h: 0.5 } },
        { id: 'r2', label: 'a dog', prompt: 'a brown dog', box: { x: 0.5, y: 0.25, w: 0.5, h: 0.5 } },
      ],
    };
    writeFileSync(path.join(tmp, 'pets.json'), JSON.stringify(scene));
    const m = fixture('tiny-flux-dev');
    const g = cli(
      'generate',
      '--model',
      m,
      '--scene',
      'pets.json',
      '--steps',
      '2',
      '--seed',
      '5',
      '--out',
      'pets.png',
      '--save-generation',
      'pets',
    );
    expect(g.status, g.stderr).toBe(0);
    // What the bot keeps for a finished generation: its parameters and its artifacts under DATA_DIR.
    const dataDir = path.join(tmp, 'data');
    const store = openStore(dataDir);
    const gen = store.createGeneration({
      kind: 'generate',
      status: 'done',
      userId: 'u1',
      channelId: 'c1',
      requestText: 'a cat and a dog',
      params: { scene, seed: 5, steps: 2, model: 'flux.1-dev' },
    });
    for (const name of ['image.png', 'trajectory.safetensors'])
      store.writeArtifact(gen.id, name, readFileSync(path.join(tmp, 'pets', name)));
    store.db.close();

    const edit = ['--edit', 'change the cat to a rabbit'];
    const byId = cliWith(
      { DATA_DIR: dataDir },
      'repaint',
      '--model',
      m,
      '--from',
      gen.id,
      ...edit,
      '--out',
      'by-id.png',
    );
    expect(byId.status, byId.stderr).toBe(0);
    expect(byId.stderr).toMatch(/re-ran the parent from its noise \(exact\)/);
    const byDir = cli('repaint', '--model', m, '--from', 'pets', ...edit, '--out', 'by-dir.png');
    expect(byDir.status, byDir.stderr).toBe(0);
    const [a, b] = [await readRgb8(path.join(tmp, 'by-id.png')), await readRgb8(path.join(tmp, 'by-dir.png'))];
    expect(Buffer.compare(Buffer.from(a.data), Buffer.from(b.data))).toBe(0);

    const unknown = cliWith(
      { DATA_DIR: dataDir },
      'repaint',
      '--model',
      m,
      '--from',
      'g0000000000000000000x',
      ...edit,
      '--out',
      'x.png',
    );
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/no generation with that id/);
  });
});
