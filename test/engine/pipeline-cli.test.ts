import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/engine/weights/safetensors.ts';
import { fixture, repoRoot } from '../support/fixtures.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-pipeline-cli-'));
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

const golden = readSafetensors(fixture('golden', 'pipeline_dev.safetensors')).tensors;
const g = (n: string) => golden[n]!.data as Float32Array;
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
}

// Tolerance 1e-4: as test/engine/pipeline.test.ts (the same pipeline behind the CLI).
describe('scenewright debug pipeline / generate --prompt', () => {
  it('debug pipeline: the golden FluxPipeline run from its tensors', () => {
    const out = path.join(tmp, 'pipeline.safetensors');
    const r = cli(
      'debug',
      'pipeline',
      '--model',
      fixture('tiny-flux-dev'),
      '--inputs',
      fixture('golden', 'pipeline_dev.safetensors'),
      '--out',
      out,
      '--steps',
      '4',
      '--width',
      '128',
      '--height',
      '128',
      '--guidance',
      '3.5',
    );
    expect(r.stderr).toMatch(/step graph \(one for every layout\): \d+ nodes, session created in \d+ ms/);
    expect(r.status).toBe(0);
    const t = readSafetensors(out).tensors;
    expect(t.final_latents!.shape).toEqual([1, 64, 64]);
    expect(maxAbsDiff(t.final_latents!.data as Float32Array, g('final_latents'))).toBeLessThan(1e-4);
    expect(maxAbsDiff(t.image!.data as Float32Array, g('image'))).toBeLessThan(1e-4);
  });

  it('generate --prompt with the golden noise: the golden latents through our tokenizers and encoders, a PNG, progress on stderr', async () => {
    const noise = path.join(tmp, 'noise.safetensors');
    writeSafetensors(noise, { noise_draw_0: golden.latents_init_unpacked! });
    const png = path.join(tmp, 'corgi.png');
    const lat = path.join(tmp, 'corgi.safetensors');
    const r = cli(
      'generate',
      '--model',
      fixture('tiny-flux-dev'),
      '--prompt',
      'A cute corgi wearing a red hat, sitting on a wooden bench in a sunny park.',
      '--width',
      '128',
      '--height',
      '128',
      '--steps',
      '4',
      '--guidance',
      '3.5',
      '--noise',
      noise,
      '--out',
      png,
      '--latents-out',
      lat,
    );
    expect(r.status, r.stderr).toBe(0);
    // The model is loaded once, before the job, and reported apart from the steps; each step line is that step's
    // own time; s/step is their mean.
    for (const c of ['text encoders', 'transformer', 'vae'])
      expect(r.stderr).toMatch(new RegExp(`loaded ${c} in \\d+\\.\\d\\d s \\(resident \\d+\\.\\d\\d GiB\\)\\n`));
    expect(r.stderr).toMatch(/generate: prompts encoded in \d+\.\d\d s\n/);
    const steps = [...r.stderr.matchAll(/generate: step (\d)\/4 {2}(\d+\.\d\d) s\n/g)].map((m) => Number(m[2]));
    expect(steps).toHaveLength(4);
    const summary =
      /generate: 4 steps, (\d+\.\d\d) s\/step \(mean of the step times, (\d+\.\d\d) s\); text encoding (\d+\.\d\d) s, other loading (\d+\.\d\d) s, decode and output \d+\.\d\d s; (\d+\.\d\d) s in all/.exec(
        r.stderr,
      );
    expect(summary, r.stderr).not.toBeNull();
    const [mean, sum, encode, loading, total] = summary!.slice(1).map(Number) as [
      number,
      number,
      number,
      number,
      number,
    ];
    expect(Math.abs(sum - steps.reduce((a, b) => a + b, 0))).toBeLessThanOrEqual(0.03);
    expect(Math.abs(mean - sum / 4)).toBeLessThanOrEqual(0.01);
    expect(encode).toBeGreaterThan(0);
    expect(sum + encode + loading).toBeLessThanOrEqual(total + 0.03);
    expect(
      maxAbsDiff(readSafetensors(lat).tensors.final_latents!.data as Float32Array, g('final_latents')),
    ).toBeLessThan(1e-4);
    const meta = await sharp(readFileSync(png)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 128, 128]);
  });

  it('generate --scene paints the layout at --width/--height when given (boxes are fractions)', async () => {
    const scene = {
      width: 1024,
      height: 1024,
      prompt: 'a cat and a dog',
      background: '',
      exclude: [],
      regions: [
        { id: 'r1', label: 'a cat', prompt: 'a cat', box: { x: 0, y: 0, w: 0.5, h: 1 } },
        { id: 'r2', label: 'a dog', prompt: 'a dog', box: { x: 0.5, y: 0, w: 0.5, h: 1 } },
      ],
    };
    writeFileSync(path.join(tmp, 'scene.json'), JSON.stringify(scene));
    const r = cli(
      'generate',
      '--model',
      fixture('tiny-flux-schnell'),
      '--scene',
      'scene.json',
      '--steps',
      '1',
      '--width',
      '192',
      '--height',
      '128',
      '--out',
      'sized.png',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(await sharp(path.join(tmp, 'sized.png')).metadata()).toMatchObject({ width: 192, height: 128 });
    const tiny = cli(
      'generate',
      '--model',
      fixture('tiny-flux-schnell'),
      '--scene',
      'scene.json',
      '--steps',
      '1',
      '--width',
      '16',
      '--height',
      '16',
      '--out',
      'x.png',
    );
    expect(tiny.status).toBe(1);
    expect(tiny.stderr).toMatch(/smaller than one 16-px token/);
  });

  it('bad input: clear errors and exit code 2', () => {
    const none = cli('generate', '--model', fixture('tiny-flux-dev'), '--out', 'x.png');
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/give exactly one of --scene, --prompt, --rag-params/);
    const bad = cli(
      'generate',
      '--model',
      fixture('tiny-flux-dev'),
      '--prompt',
      'x',
      '--width',
      '120',
      '--height',
      '128',
      '--out',
      'x.png',
    );
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--width 120 must be a positive multiple of 16/);
    const noise = path.join(tmp, 'short.safetensors');
    writeSafetensors(noise, { noise_draw_0: { dtype: 'float32', shape: [1, 16, 8, 8], data: new Float32Array(1024) } });
    const wrong = cli(
      'generate',
      '--model',
      fixture('tiny-flux-dev'),
      '--prompt',
      'x',
      '--width',
      '128',
      '--height',
      '128',
      '--steps',
      '1',
      '--noise',
      noise,
      '--out',
      'x.png',
    );
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toMatch(
      /noise_draw_0 \(global latent\) has shape \[1, 16, 8, 8\], expected \[1, 16, 16, 16\]/,
    );
  });
});
