import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_NAMES, loadConfig, readEnvironment } from '../../src/config/config.ts';
import { ConfigError } from '../../src/config/errors.ts';
import { repoRoot } from '../support/fixtures.ts';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('configuration', () => {
  it('applies documented defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c.model.executionProvider).toBe('cpu');
    expect(c.discord.apiUrl).toBe('https://discord.com/api');
    expect(c.llm.enabled).toBe(false);
    expect(c.limits.maxRegions).toBe(8);
    expect(path.isAbsolute(c.dataDir)).toBe(true);
  });

  it('lists every problem at once, each with a way to fix it', () => {
    const problems = problemsOf(() =>
      loadConfig({ EXECUTION_PROVIDER: 'tpu', MAX_REGIONS: 'many', MIN_SIZE: '1000', MAX_SIZE: '520' }, [
        'discord',
        'model',
      ]),
    );
    expect(problems.some((p) => p.startsWith('DISCORD_TOKEN is not set') && p.includes('developer'))).toBe(true);
    expect(problems.some((p) => p.startsWith('MODEL_DIR is not set') && p.includes('README'))).toBe(true);
    expect(problems).toContain("EXECUTION_PROVIDER must be one of cpu, cuda, webgpu; got 'tpu'");
    expect(problems).toContain("MAX_REGIONS must be a whole number between 1 and 32; got 'many'");
    expect(problems.length).toBeGreaterThanOrEqual(4);
  });

  it('lists size problems in the same pass as the others, in plain words, never a validator’s text', () => {
    const problems = problemsOf(() =>
      loadConfig({ MAX_SIZE: 'big', MIN_SIZE: '1000', OPENAI_TIMEOUT_MS: '1.5', REDIS_URL: 'http://10.0.0.5' }),
    );
    expect(problems).toContain("MAX_SIZE must be a whole number between 16 and 4096; got 'big'");
    expect(problems).toContain("OPENAI_TIMEOUT_MS must be a whole number between 1000 and 600000; got '1.5'");
    expect(problems.some((p) => p.startsWith('REDIS_URL must be a redis:// or rediss:// URL'))).toBe(true);
    expect(problems.some((p) => p.startsWith('MIN_SIZE (1000) must be a multiple of 16'))).toBe(true);
    for (const p of problems) expect(p).not.toMatch(/expected|received|NaN|Invalid input/i);
  });

  it('a MODEL_DIR that does not exist is a configuration problem, not a bare ENOENT later', () => {
    const problems = problemsOf(() => loadConfig({ MODEL_DIR: '/nonexistent/flux' }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^MODEL_DIR \(\/nonexistent\/flux\) does not exist: set it to the folder/);
  });

  it('checks sizes against the token grid and each other', () => {
    const problems = problemsOf(() => loadConfig({ MIN_SIZE: '1040', MAX_SIZE: '1000', DEFAULT_SIZE: '1000' }));
    expect(problems.some((p) => p.includes('MIN_SIZE (1040) is larger than MAX_SIZE (1000)'))).toBe(true);
    expect(problems.some((p) => p.includes('MAX_SIZE (1000) must be a multiple of 16') && p.includes('try 1008'))).toBe(
      true,
    );
  });

  it('parses lists, booleans and URLs', () => {
    const c = loadConfig({
      ALLOWED_CHANNEL_IDS: '123, 456,,',
      PROMPT_DENY_LIST: 'Gore,Blood',
      ALLOW_OTHERS_TO_EDIT: 'yes',
      DISCORD_API_URL: 'http://127.0.0.1:9999/api/',
      OPENAI_BASE_URL: 'http://127.0.0.1:8080/v1',
    });
    expect(c.access.allowedChannelIds).toEqual(['123', '456']);
    expect(c.access.promptDenyList).toEqual(['gore', 'blood']);
    expect(c.access.allowOthersToEdit).toBe(true);
    expect(c.discord.apiUrl).toBe('http://127.0.0.1:9999/api');
    expect(c.llm.enabled).toBe(true);
    expect(problemsOf(() => loadConfig({ DISCORD_API_URL: 'ftp://x' }))[0]).toBe(
      "DISCORD_API_URL must be an http:// or https:// URL; got 'ftp://x'",
    );
  });

  it('WEIGHTS: one form for the transformer and T5, or per component; a bad value says what works', () => {
    expect(loadConfig({}).model.weights).toEqual({ transformer: 'auto', text_encoder_2: 'auto', text_encoder: 'auto' });
    expect(loadConfig({ WEIGHTS: 'int4' }).model.weights).toEqual({
      transformer: 'int4',
      text_encoder_2: 'int4',
      text_encoder: 'auto',
    });
    expect(loadConfig({ WEIGHTS: 'transformer:int4, t5=int8' }).model.weights).toEqual({
      transformer: 'int4',
      text_encoder_2: 'int8',
      text_encoder: 'auto',
    });
    expect(problemsOf(() => loadConfig({ WEIGHTS: 'int3' }))).toEqual([
      expect.stringMatching(
        /^WEIGHTS: "int3" is not a weights form \(use auto, bf16, int8, int4\); e\.g\. WEIGHTS=int8/,
      ),
    ]);
    expect(problemsOf(() => loadConfig({ WEIGHTS: 'unet:int8' }))).toEqual([
      expect.stringMatching(/"unet" is not a component \(use transformer, t5 or clip\)/),
    ]);
    expect(loadConfig({ WEIGHTS_CACHE_DIR: 'cache-here' }).model.weightsCacheDir).toBe(path.resolve('cache-here'));
    expect(loadConfig({ XDG_CACHE_HOME: '/x/cache' }).model.weightsCacheDir).toBe('/x/cache/scenewright/weights');
  });

  it('reads .env under the real environment, which wins; empty values mean unset', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sw-env-'));
    writeFileSync(path.join(dir, '.env'), 'MAX_STEPS=12\nOPENAI_API_KEY=\nLOG_LEVEL=debug\n');
    const env = readEnvironment(dir, { LOG_LEVEL: 'warn' });
    expect(env.MAX_STEPS).toBe('12');
    expect(env.LOG_LEVEL).toBe('warn');
    expect('OPENAI_API_KEY' in env).toBe(false);
  });

  it('documents every variable in .env.example', () => {
    const example = readFileSync(path.join(repoRoot, '.env.example'), 'utf8');
    for (const name of CONFIG_NAMES) expect(example, name).toMatch(new RegExp(`^#?\\s*${name}=`, 'm'));
  });

  it('npm start with an empty environment names DISCORD_TOKEN and exits 2 without a stack trace', () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'sw-start-'));
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin/scenewright.js'), 'start'], {
      cwd,
      env: { PATH: process.env.PATH ?? '' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('DISCORD_TOKEN is not set');
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
  });
});
