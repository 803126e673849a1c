import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planOffline } from '../../src/planner/offline.ts';
import { sceneToJSON } from '../../src/scene/json.ts';
import { repoRoot } from '../support/fixtures.ts';
import {
  lastUserText,
  startFakeOpenAI,
  type FakeOpenAI,
  type FakeRequest,
  type FakeResponse,
} from '../support/fake-openai.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'scenewright-cli-'));
let fake: FakeOpenAI;
let respond: (req: FakeRequest) => FakeResponse = () => ({ status: 500, error: { message: 'unset' } });

beforeAll(async () => {
  fake = await startFakeOpenAI({ respond: (req) => respond(req) });
});
afterAll(async () => {
  await fake.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !k.startsWith('OPENAI_') && k !== 'VITEST' && k !== 'LOG_LEVEL') clean[k] = v;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(repoRoot, 'bin/scenewright.js'), ...args],
      { cwd: dir, env: { ...clean, LOG_LEVEL: 'warn', ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

const KEYS = ['width', 'height', 'prompt', 'background', 'exclude', 'regions'];

describe('CLI: plan, edit, layout through node bin/scenewright.js', () => {
  it('plan prints one Scene JSON line; without an LLM it says so on stderr and plans offline', async () => {
    const r = await cli(['plan', 'two red apples and a blue bowl on a wooden table', '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /no LLM configured \(OPENAI_API_KEY \/ OPENAI_BASE_URL unset\): using the offline planner/,
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const scene = JSON.parse(lines[0]!) as { regions: { id: string; label: string; box: Record<string, number> }[] };
    expect(Object.keys(scene)).toEqual(KEYS);
    expect(scene.regions.map((x) => x.label)).toEqual(['a red apple', 'a red apple', 'a blue bowl', 'a wooden table']);
    expect(Object.keys(scene.regions[0]!.box)).toEqual(['x', 'y', 'w', 'h']);
  });

  it('plan tells the user that a crowd is drawn as one group: on stderr, and in the text output', async () => {
    const r = await cli(['plan', 'a thousand birds in the sky', '--offline']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      /note: 1,000 is more than the 8 separate regions .* drawn as one group: "a flock of birds"/,
    );
    expect(r.stdout).toMatch(/group: +a flock of birds: 1,000 is more than/);
    expect(r.stdout).toMatch(/a flock of a thousand birds/);
  });

  it('plan --batch keeps input order; a failing line is an {"error"} line and the batch goes on', async () => {
    const batch = file('batch.txt', 'three cats\n\n!!!\na balloon above a dog\r\na park without dogs\n');
    const r = await cli(['plan', '--batch', batch, '--offline', '--json']);
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(4);
    expect((lines[0]!.regions as unknown[]).length).toBe(3);
    expect(lines[1]).toMatchObject({ line: 3, input: '!!!' });
    expect(lines[1]!.error).toMatch(/empty/);
    expect(lines[2]!.prompt as string).toBe('A balloon above a dog');
    expect(lines[3]!.exclude).toEqual(['dogs']);
  });

  it('plan and plan --batch with an LLM (fake server): answers in input order despite different delays', async () => {
    respond = (req) => {
      const text = /<description>\n([\s\S]*?)\n<\/description>/.exec(lastUserText(req))![1]!;
      const n = Number(/#(\d+)/.exec(text)?.[1] ?? 0);
      return {
        delayMs: (5 - n) * 60,
        json: {
          prompt: text,
          background: 'a studio',
          exclude: [],
          aspect: null,
          regions: [{ label: `object ${n}`, prompt: `object ${n}`, box: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 } }],
        },
      };
    };
    const env = { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'sk-cli-test-key', OPENAI_MODEL: 'fake' };
    const batch = file('llm-batch.txt', ['thing #1', 'thing #2', 'thing #3', 'thing #4', 'thing #5'].join('\n'));
    const r = await cli(['plan', '--batch', batch, '--json'], { ...env, LOG_LEVEL: 'info' });
    expect(r.stderr).not.toMatch(/no LLM configured/);
    // One log line per call with latency and token usage, and never the key.
    const calls = r.stderr.split('\n').filter((l) => l.includes('"llm call"'));
    expect(calls).toHaveLength(5);
    expect(JSON.parse(calls[0]!)).toMatchObject({
      purpose: 'plan',
      model: 'fake',
      mode: 'json_schema',
      usage: { prompt_tokens: 100, completion_tokens: 50 },
    });
    expect(JSON.parse(calls[0]!).latencyMs).toBeGreaterThanOrEqual(0);
    expect(r.stderr).not.toContain('sk-cli-test-key');
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { regions: { label: string }[] }).regions[0]!.label),
    ).toEqual(['object 1', 'object 2', 'object 3', 'object 4', 'object 5']);
  });

  it('plan falls back to the offline planner when the LLM times out', async () => {
    respond = () => ({ hang: true });
    const env = { OPENAI_BASE_URL: fake.url, OPENAI_API_KEY: 'sk-cli-test-key', OPENAI_TIMEOUT_MS: '1000' };
    const r = await cli(['plan', 'three cats', '--json'], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/the LLM planner failed \(the LLM did not answer within 1000 ms/);
    expect(JSON.parse(r.stdout).regions).toHaveLength(3);
  });

  it('edit keeps ids, repaints what changed, asks when a reference is ambiguous; the output feeds back in', async () => {
    const scenePath = file(
      'cats.json',
      sceneToJSON(planOffline('a tabby cat on the left and a black cat on the right').scene),
    );
    const [r, ask] = await Promise.all([
      cli(['edit', '--scene', scenePath, 'change the left cat to a dog', '--offline', '--json']),
      cli(['edit', '--scene', scenePath, 'make the cat orange', '--offline', '--json']),
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown> & { regions: { id: string; label: string }[] };
    expect(out.regions.map((x) => [x.id, x.label])).toEqual([
      ['r1', 'a dog'],
      ['r2', 'a black cat'],
    ]);
    expect(out).toMatchObject({
      kind: 'change',
      repaint: ['r1'],
      regenerate: false,
      prompt: 'A dog on the left and a black cat on the right',
    });
    const again = await cli([
      'edit',
      '--scene',
      file('dog.json', r.stdout),
      'remove the black cat',
      '--offline',
      '--json',
    ]);
    expect((JSON.parse(again.stdout) as { regions: { id: string }[] }).regions.map((x) => x.id)).toEqual(['r1']);
    expect(JSON.parse(ask.stdout)).toMatchObject({
      kind: 'clarify',
      question: 'Which cat do you mean: the tabby cat or the black cat?',
      repaint: [],
    });
  });

  it('edit --batch: one {scene, instruction} per line in, one result per line out, in order, in one process', async () => {
    const scene = JSON.parse(sceneToJSON(planOffline('a tabby cat on the left and a black cat on the right').scene));
    const lines = [
      JSON.stringify({ scene, instruction: 'change the left cat to a dog' }),
      '',
      '{"scene": 1',
      JSON.stringify({ scene, instruction: 'make the cat orange' }),
      JSON.stringify({ scene: { ...scene, width: 'wide' }, instruction: 'remove the black cat' }),
      JSON.stringify({ scene, instruction: '  ' }),
      JSON.stringify({ scene, instruction: 'remove the black cat' }),
    ];
    const r = await cli(['edit', '--batch', file('edits.jsonl', lines.join('\n')), '--offline']);
    expect(r.code).toBe(0);
    const out = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown> & { regions?: { id: string; label: string }[] });
    expect(out).toHaveLength(6);
    expect(out[0]!.regions!.map((x) => [x.id, x.label])).toEqual([
      ['r1', 'a dog'],
      ['r2', 'a black cat'],
    ]);
    expect(out[0]).toMatchObject({ kind: 'change', repaint: ['r1'], source: 'offline' });
    expect(out[1]).toMatchObject({ line: 3 });
    expect(out[1]!.error).toMatch(/not valid JSON/);
    expect(out[2]).toMatchObject({
      kind: 'clarify',
      question: 'Which cat do you mean: the tabby cat or the black cat?',
    });
    expect(out[3]).toMatchObject({ line: 5 });
    expect(out[3]!.error).toMatch(/"scene" is not a valid scene/);
    expect(out[4]!.error).toMatch(/"instruction" is missing or empty/);
    expect(out[5]!.regions!.map((x) => x.id)).toEqual(['r1']);
    const both = await cli(['edit', '--batch', 'x.jsonl', '--scene', 'y.json']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--batch reads scene, instruction and history from each line/);
  });

  it('layout writes a PNG; bad input gets a clear error', async () => {
    const scenePath = file('s.json', sceneToJSON(planOffline('a cat and a dog').scene));
    const out = path.join(dir, 'layout.png');
    const [r, broken, usage, noScene] = await Promise.all([
      cli(['layout', '--scene', scenePath, '--out', out]),
      cli([
        'layout',
        '--scene',
        file('broken.json', '{"width": 1000, "regions": []}'),
        '--out',
        path.join(dir, 'never.png'),
      ]),
      cli(['plan']),
      cli(['edit', 'make it red']),
    ]);
    expect(r.code).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect((await sharp(readFileSync(out)).metadata()).width).toBe(512);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/error: [\s\S]*prompt: Invalid input/);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/give a scene description/);
    expect(noScene.code).toBe(2);
    expect(noScene.stderr).toMatch(/--scene <scene.json> is required/);
  });
});
