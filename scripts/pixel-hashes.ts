/**
 * SHA-256 of the PNG and final latents of a fixed set of jobs on the tiny checkpoint, through the CLI.
 * A refactor that must not change pixels prints the same hashes before and after (same machine: ORT's CPU
 * kernels may differ bit-wise between processors). Usage: node --import tsx scripts/pixel-hashes.ts [--model DIR]
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const fixtures = process.env.SCENEWRIGHT_FIXTURES ?? path.resolve(root, '..', 'shared', 'fixtures');
const argModel = process.argv.indexOf('--model');
const model = argModel > 0 ? path.resolve(process.argv[argModel + 1]!) : path.join(fixtures, 'tiny-flux-dev');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-hashes-'));

function cli(env: Record<string, string>, ...args: string[]): void {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'scenewright.js'), ...args], {
    cwd: tmp,
    env: {
      ...process.env,
      EXECUTION_PROVIDER: 'cpu',
      ORT_THREADS: '2',
      LOG_LEVEL: 'silent',
      WEIGHTS_CACHE_DIR: path.join(tmp, 'cache'),
      ...env,
    },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`scenewright ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
}

const sha = (file: string) =>
  existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex').slice(0, 16) : 'missing';

const two = {
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
const plain = { ...two, regions: [] };
writeFileSync(path.join(tmp, 'two.json'), JSON.stringify(two));
writeFileSync(path.join(tmp, 'plain.json'), JSON.stringify(plain));

const jobs: Array<[string, Record<string, string>, string[]]> = [
  ['plain', {}, ['generate', '--model', model, '--scene', 'plain.json', '--steps', '4', '--seed', '7']],
  [
    'k2s2',
    {},
    ['generate', '--model', model, '--scene', 'two.json', '--steps', '4', '--seed', '3', '--save-generation', 'k2s2'],
  ],
  [
    'repaint',
    {},
    [
      'repaint',
      '--model',
      model,
      '--from',
      'k2s2',
      '--edit',
      'change the lemonade to a blue cup',
      '--save-generation',
      'repaint',
    ],
  ],
  ['repaint-of-repaint', {}, ['repaint', '--model', model, '--from', 'repaint', '--edit', 'make the apple green']],
  [
    'two-region-edit',
    {},
    [
      'repaint',
      '--model',
      model,
      '--from',
      'k2s2',
      '--edit',
      'make the apple green and change the lemonade to a blue cup',
    ],
  ],
  ['int4', { WEIGHTS: 'int4' }, ['generate', '--model', model, '--scene', 'two.json', '--steps', '4', '--seed', '3']],
];
const out: Record<string, { png: string; latents: string }> = {};
try {
  for (const [name, env, args] of jobs) {
    cli(env, ...args, '--out', `${name}.png`, '--latents-out', `${name}.safetensors`);
    out[name] = { png: sha(path.join(tmp, `${name}.png`)), latents: sha(path.join(tmp, `${name}.safetensors`)) };
    console.log(`${name.padEnd(20)} png ${out[name].png}  latents ${out[name].latents}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
