import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runDebug } from '../../src/engine/debug/run.ts';
import { fixture, repoRoot } from '../support/fixtures.ts';

const cpu = { executionProvider: 'cpu' as const, threads: 1 };
interface Case {
  config: 'dev' | 'schnell';
  steps: number;
  image_seq_len: number;
  sigmas: number[];
  timesteps: number[];
}
const cases = (JSON.parse(fs.readFileSync(fixture('golden', 'scheduler.json'), 'utf8')) as { cases: Case[] }).cases;

describe('debug scheduler', () => {
  it.each(cases.map((c) => [`${c.config} ${c.steps}×${c.image_seq_len}`, c] as const))(
    '%s prints the golden lists',
    async (_n, c) => {
      const model = fixture(c.config === 'dev' ? 'tiny-flux-dev' : 'tiny-flux-schnell');
      const result = await runDebug(
        'scheduler',
        { model, steps: String(c.steps), 'seq-len': String(c.image_seq_len) },
        cpu,
        () => {},
      );
      expect('json' in result).toBe(true);
      const json = (result as { json: { sigmas: number[]; timesteps: number[] } }).json;
      expect(json.sigmas).toEqual(c.sigmas);
      expect(json.timesteps).toEqual(c.timesteps);
    },
  );

  it('through the CLI: JSON on stdout; a bad --steps is a usage error', async () => {
    const run = promisify(execFile);
    const bin = path.join(repoRoot, 'bin', 'scenewright.js');
    const { stdout } = await run(
      process.execPath,
      [bin, 'debug', 'scheduler', '--model', fixture('tiny-flux-schnell'), '--steps', '4', '--seq-len', '64'],
      { cwd: repoRoot },
    );
    expect(JSON.parse(stdout)).toEqual({ sigmas: [1, 0.75, 0.5, 0.25, 0], timesteps: [1000, 750, 500, 250] });
    const bad = await run(
      process.execPath,
      [bin, 'debug', 'scheduler', '--model', fixture('tiny-flux-dev'), '--steps', '0', '--seq-len', '64'],
      { cwd: repoRoot },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
    expect((bad as { stderr: string }).stderr).toMatch(/--steps must be a whole number from 1/);
  });
});
