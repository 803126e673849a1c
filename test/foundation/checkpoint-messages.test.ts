// Checkpoint errors that name the real problem (issue 19, "Errors that say the wrong thing").
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { fixture } from '../support/fixtures.ts';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('checkpoint messages', () => {
  it('a transformer folder without its weights file says the file is missing, not the folder', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sw-ck-'));
    const model = path.join(dir, 'model');
    cpSync(fixture('tiny-flux-schnell'), model, { recursive: true });
    for (const f of readdirSync(path.join(model, 'transformer')))
      if (f.endsWith('.safetensors')) rmSync(path.join(model, 'transformer', f));
    expect(() => loadCheckpoint(model)).toThrow(
      /has no FLUX\.1 transformer weights: transformer\/ has a config\.json but no diffusion_pytorch_model\.safetensors.*download transformer\/diffusion_pytorch_model\.safetensors/s,
    );
    expect(() => loadCheckpoint(model)).not.toThrow(/no transformer\/ folder/);
  });
});
