import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { ConfigError } from '../../src/config/errors.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-config-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('LORA_DIR', () => {
  it('is optional, and an absolute folder when set', () => {
    expect(loadConfig({}).model.loraDir).toBeUndefined();
    expect(loadConfig({ LORA_DIR: path.relative(process.cwd(), tmp) }).model.loraDir).toBe(tmp);
  });

  it('a folder that does not exist is a problem that says what to set', () => {
    let problems: string[] = [];
    try {
      loadConfig({ LORA_DIR: path.join(tmp, 'nope') });
    } catch (e) {
      problems = (e as ConfigError).problems;
    }
    expect(problems).toEqual([
      `LORA_DIR (${path.join(tmp, 'nope')}) does not exist: set it to the folder of your LoRA .safetensors files (README "Styles (LoRA)"), or leave it empty for no styles`,
    ]);
  });
});
