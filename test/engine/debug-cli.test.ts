import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors, type HostTensor } from '../../src/engine/weights/safetensors.ts';
import { fixture, repoRoot } from '../support/fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-debug-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  const env = { ...process.env, EXECUTION_PROVIDER: 'cpu', ORT_THREADS: '2', LOG_LEVEL: 'silent' };
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'scenewright.js'), ...args], {
    cwd: tmp,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

const golden = readSafetensors(fixture('golden', 'transformer.safetensors')).tensors;

/** The golden inputs of one case under the plain names of the CLI contract (the `caseN_` prefix stripped). */
function caseInputs(prefix: string, names: string[]): Record<string, HostTensor> {
  return Object.fromEntries(names.map((n) => [n, golden[`${prefix}${n}`]!]));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
}

describe('scenewright debug transformer', () => {
  it('runs the schnell checkpoint on plain-named inputs and writes `sample`', () => {
    const inputs = path.join(tmp, 'in.safetensors');
    const out = path.join(tmp, 'out.safetensors');
    writeSafetensors(
      inputs,
      caseInputs('case3_schnell_', [
        'hidden_states',
        'encoder_hidden_states',
        'pooled_projections',
        'timestep',
        'img_ids',
        'txt_ids',
      ]),
    );
    const r = cli('debug', 'transformer', '--model', fixture('tiny-flux-schnell'), '--inputs', inputs, '--out', out);
    expect(r.stderr).toMatch(/transformer \(schnell, diffusers layout\): \d+ nodes, session created in \d+ ms/);
    expect(r.status).toBe(0);
    const sample = readSafetensors(out).tensors.sample!;
    expect(sample.shape).toEqual([1, 16, 64]);
    // Same tolerance as test/engine/transformer.test.ts (schnell: no 3500-rad guidance phase).
    expect(
      maxAbsDiff(sample.data as Float32Array, golden.case3_schnell_out_diffusers!.data as Float32Array),
    ).toBeLessThan(2e-5);
  });

  it('reads a golden file directly with --prefix and writes intermediates on request', () => {
    const out = path.join(tmp, 'out1.safetensors');
    const r = cli(
      'debug',
      'transformer',
      '--model',
      fixture('tiny-flux-dev-bfl'),
      '--inputs',
      fixture('golden', 'transformer.safetensors'),
      '--prefix',
      'case1_',
      '--out',
      out,
      '--intermediates',
    );
    expect(r.status, r.stderr).toBe(0);
    const t = readSafetensors(out).tensors;
    expect(Object.keys(t)).toContain('dbg_temb');
    expect(maxAbsDiff(t.sample!.data as Float32Array, golden.case1_out_bfl!.data as Float32Array)).toBeLessThan(1e-4);
  });

  it('explains a missing input, a missing flag and an unknown component (exit code 2)', () => {
    const inputs = path.join(tmp, 'partial.safetensors');
    writeSafetensors(inputs, caseInputs('case1_', ['hidden_states', 'timestep']));
    const missing = cli(
      'debug',
      'transformer',
      '--model',
      fixture('tiny-flux-dev'),
      '--inputs',
      inputs,
      '--out',
      path.join(tmp, 'x.safetensors'),
    );
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(
      /input tensor "encoder_hidden_states" is missing from --inputs \(found: hidden_states, timestep/,
    );
    const noOut = cli('debug', 'transformer', '--model', fixture('tiny-flux-dev'), '--inputs', inputs);
    expect(noOut.status).toBe(2);
    expect(noOut.stderr).toMatch(/debug transformer needs --out/);
    const unknown = cli('debug', 'unet', '--model', fixture('tiny-flux-dev'));
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/unknown debug component "unet"\. Components: transformer/);
  });
});
