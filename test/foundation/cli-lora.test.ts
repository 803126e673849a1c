// `scenewright generate --lora <file>[:<scale>]` and Scene JSON styles on the command line: parsed, found, hashed
// and written into the saved generation before (and whatever) the engine does with them; bad input refused
// before the model loads, with the file named.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseLoraFlags } from '../../src/cli/loras.ts';
import { fixture, repoRoot } from '../support/fixtures.ts';
import { writeStyleFile } from '../bot/style-files.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-cli-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(env: Record<string, string>, ...args: string[]) {
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'scenewright.js'), ...args], {
    cwd: tmp,
    env: { PATH: process.env.PATH ?? '', EXECUTION_PROVIDER: 'cpu', ORT_THREADS: '2', LOG_LEVEL: 'silent', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('--lora values', () => {
  it('file, file:scale, a style name, and a Windows path whose colon is no scale', () => {
    expect(parseLoraFlags(['a.safetensors', 'dir/b.safetensors:0.5', 'ink:-1.5', 'C:\\s\\c.safetensors'])).toEqual([
      { name: path.resolve('a.safetensors'), scale: 1 },
      { name: path.resolve('dir/b.safetensors'), scale: 0.5 },
      { name: 'ink', scale: -1.5 },
      { name: path.resolve('C:\\s\\c.safetensors'), scale: 1 },
    ]);
  });

  it('refuses a scale outside −4…4, a scale that is no number, and the same file twice', () => {
    expect(() => parseLoraFlags(['a.safetensors:5'])).toThrow(/scale 5 is outside -4…4/);
    expect(() => parseLoraFlags(['a.safetensors:strong'])).toThrow(/the scale "strong" is not a number/);
    expect(() => parseLoraFlags(['a.safetensors', './a.safetensors:0.5'])).toThrow(/given twice/);
  });
});

describe('scenewright generate with styles', () => {
  const styles = path.join(tmp, 'styles');
  const ink = writeStyleFile(styles, 'ink', { seed: 3 });
  const mine = writeStyleFile(path.join(tmp, 'mine'), 'my-look', { seed: 4 });
  const sceneFile = path.join(tmp, 'scene.json');
  writeFileSync(
    sceneFile,
    JSON.stringify({
      width: 128,
      height: 128,
      prompt: 'a cat and a dog',
      regions: [
        {
          id: 'r1',
          label: 'a cat',
          prompt: 'a cat',
          box: { x: 0, y: 0, w: 0.5, h: 1 },
          loras: [{ name: 'ink', scale: 0.7 }],
        },
        { id: 'r2', label: 'a dog', prompt: 'a dog', box: { x: 0.5, y: 0, w: 0.5, h: 1 } },
      ],
    }),
  );

  it('--help shows --lora', () => {
    const r = cli({}, 'generate', '--help');
    expect(r.stdout).toMatch(/--lora <file\.safetensors>\[:<scale>\]/);
  });

  it('paints with --lora and Scene styles, pinning every file by absolute path and SHA-256; repaint --from re-runs it with its styles', () => {
    const save = path.join(tmp, 'saved');
    const r = cli(
      { LORA_DIR: styles },
      'generate',
      '--model',
      fixture('tiny-flux-schnell'),
      '--scene',
      sceneFile,
      '--steps',
      '1',
      '--lora',
      'mine/my-look.safetensors:0.5',
      '--out',
      path.join(tmp, 'out.png'),
      '--save-generation',
      save,
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/styles my-look, ink/);
    const saved = JSON.parse(readFileSync(path.join(save, 'generation.json'), 'utf8')) as {
      rag: { loras: unknown; HB_lora_list: unknown };
    };
    expect(saved.rag.loras).toEqual([{ name: mine, scale: 0.5, sha256: sha(mine) }]);
    expect(saved.rag.HB_lora_list).toEqual([[{ name: ink, scale: 0.7, sha256: sha(ink) }], []]);

    // The repaint of that saved generation keeps its styles and repaints the dog.
    const rp = cli(
      { LORA_DIR: styles },
      'repaint',
      '--model',
      fixture('tiny-flux-schnell'),
      '--from',
      save,
      '--edit',
      'make the dog orange',
      '--out',
      path.join(tmp, 'dog.png'),
      '--save-generation',
      path.join(tmp, 'saved2'),
    );
    expect(rp.status, rp.stderr).toBe(0);
    const repainted = JSON.parse(readFileSync(path.join(tmp, 'saved2', 'generation.json'), 'utf8')) as {
      rag: { loras: unknown; HB_lora_list: unknown; Repainting_HB_prompt: string };
    };
    expect(repainted.rag.Repainting_HB_prompt).toBe('an orange dog');
    expect(repainted.rag.loras).toEqual([{ name: mine, scale: 0.5, sha256: sha(mine) }]);
    expect(repainted.rag.HB_lora_list).toEqual([[{ name: ink, scale: 0.7, sha256: sha(ink) }], []]);
  });

  it('plan and edit know the styles of LORA_DIR', () => {
    const planned = cli({ LORA_DIR: styles }, 'plan', '--offline', '--json', 'a cat and a dog in the style of ink');
    expect(planned.status, planned.stderr).toBe(0);
    const scene = JSON.parse(planned.stdout) as { loras?: unknown; regions: { label: string }[] };
    expect(scene.loras).toEqual([{ name: 'ink', scale: 1 }]);
    writeFileSync(path.join(tmp, 'planned.json'), planned.stdout);
    const edited = cli(
      { LORA_DIR: styles },
      'edit',
      '--offline',
      '--json',
      '--scene',
      path.join(tmp, 'planned.json'),
      'make the dog a my-look',
    );
    // "my-look" is not in that LORA_DIR: not a style, just words (the dog becomes "a my-look", without a style).
    expect(edited.status, edited.stderr).toBe(0);
    const plainEdit = JSON.parse(edited.stdout) as { regions: { id: string; label: string; loras?: unknown }[] };
    const dog = plainEdit.regions.find((r) => r.id === 'r2');
    expect(dog?.label).toBe('a my-look');
    expect(dog).not.toHaveProperty('loras');
    const restyled = cli(
      { LORA_DIR: path.dirname(mine) },
      'edit',
      '--offline',
      '--json',
      '--scene',
      path.join(tmp, 'planned.json'),
      'make the dog a my-look',
    );
    expect(restyled.status, restyled.stderr).toBe(0);
    const out = JSON.parse(restyled.stdout) as { regions: { label: string; loras?: unknown }[] };
    expect(out.regions.find((r) => r.label === 'a dog')!.loras).toEqual([{ name: 'my-look', scale: 1 }]);
  });

  it('a missing --lora file (with --scene or --prompt) and an unknown style name are refused before the model loads', () => {
    const model = ['--model', fixture('tiny-flux-schnell')];
    const out = ['--out', path.join(tmp, 'x.png')];
    const missing = cli({}, 'generate', ...model, '--scene', sceneFile, '--lora', 'nope.safetensors', ...out);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/nope\.safetensors.*ENOENT/);
    expect(missing.stderr).not.toMatch(/loaded /);
    const unknown = cli({ LORA_DIR: styles }, 'generate', ...model, '--scene', sceneFile, '--lora', 'oil', ...out);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/there is no style "oil"; the styles are: ink/);
    const noDir = cli({}, 'generate', ...model, '--scene', sceneFile, ...out);
    expect(noDir.status).toBe(2);
    expect(noDir.stderr).toMatch(/LORA_DIR is not set.*"ink"/);
    const plain = cli({}, 'generate', ...model, '--prompt', 'a cat', '--lora', 'a.safetensors', ...out);
    expect(plain.status).toBe(2);
    expect(plain.stderr).toMatch(/a\.safetensors.*ENOENT/);
    expect(plain.stderr).not.toMatch(/loaded /);
  });

  it('a plain --prompt takes --lora too: scale 0 paints the same bytes as no style, scale 2 other ones', () => {
    const paint = (name: string, ...lora: string[]) => {
      const file = path.join(tmp, `${name}.png`);
      const r = cli(
        { LORA_DIR: styles },
        'generate',
        '--model',
        fixture('tiny-flux-schnell'),
        '--prompt',
        'a cat',
        '--width',
        '64',
        '--height',
        '64',
        '--steps',
        '1',
        ...lora,
        '--out',
        file,
      );
      expect(r.status, r.stderr).toBe(0);
      return { png: readFileSync(file), stderr: r.stderr };
    };
    const none = paint('plain-none');
    const zero = paint('plain-zero', '--lora', 'ink:0');
    const two = paint('plain-two', '--lora', 'ink:2');
    expect(zero.stderr).toMatch(/styles ink:0/);
    expect(zero.png.equals(none.png)).toBe(true);
    expect(two.png.equals(none.png)).toBe(false);
  });
});
