// --help shows the defaults a newcomer needs to know (issue 19, "Errors that say the wrong thing").
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/fixtures.ts';

function cli(...args: string[]): string {
  const r = spawnSync(process.execPath, ['bin/scenewright.js', ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '' },
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('--help', () => {
  it('lists every setting that has a default, with it', () => {
    const out = cli('--help');
    for (const d of [
      'DATA_DIR=./data',
      'DEFAULT_SIZE=1024',
      'MAX_STEPS=50',
      'LOG_LEVEL=info',
      'EXECUTION_PROVIDER=cpu',
    ])
      expect(out).toContain(d);
  });

  it('a command’s --help names the settings it reads and their defaults', () => {
    const out = cli('start', '--help');
    expect(out).toMatch(/usage: scenewright start/);
    expect(out).toMatch(/^ {2}USER_COOLDOWN_SECONDS \[5\]$/m);
    expect(out).toMatch(/^ {2}MODEL_DIR$/m);
    expect(out).toMatch(/^ {2}LORA_DIR$/m);
  });

  it('bot reads the bot settings but not the painter’s; worker names the painter’s and LORA_DIR', () => {
    const bot = cli('bot', '--help');
    expect(bot).toMatch(/^ {2}USER_COOLDOWN_SECONDS \[5\]$/m);
    expect(bot).not.toMatch(/^ {2}MODEL_DIR$/m);
    const worker = cli('worker', '--help');
    expect(worker).toMatch(/^ {2}MODEL_DIR$/m);
    expect(worker).toMatch(/^ {2}LORA_DIR$/m);
  });
});

describe('each command’s --help states its defaults', () => {
  it.each([
    ['generate', /Defaults:.*--steps/s],
    ['repaint', /Defaults: --seed derived from the parent's seed/],
    ['plan', /Defaults: DEFAULT_SIZE square \(1024×1024\)/],
    ['edit', /Defaults: the LLM edits when OPENAI_\* is configured/],
    ['layout', /Defaults: --width 512/],
  ])('%s', (name, pattern) => {
    expect(cli(name, '--help')).toMatch(pattern);
  });
});
