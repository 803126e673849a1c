import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const ortDir = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));

// npm 10 runs onnxruntime-node's postinstall, which downloads the CUDA 12 provider from NuGet and fails `npm ci`
// where NuGet is unreachable; the project's own global-agent (packages/ort-install-guard) turns that into a skip.
describe('onnxruntime-node install script', () => {
  it("resolves global-agent to the project's guard, not the proxy package", () => {
    const resolved = createRequire(path.join(ortDir, 'script', 'install.js')).resolve('global-agent');
    expect(realpathSync(resolved)).toBe(path.join(root, 'packages', 'ort-install-guard', 'index.js'));
  });

  it('skips the download when nothing asks for it, without touching the network', () => {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (/onnxruntime_node_install/i.test(k)) delete env[k];
    // A proxy that does not exist: if the script tried to download, it would fail here instead of NuGet.
    env.HTTPS_PROXY = env.https_proxy = 'http://127.0.0.1:9';
    const run = spawnSync(process.execPath, [path.join(ortDir, 'script', 'install.js')], {
      env,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout + run.stderr).toBe('');
  });

  it('still honours an explicit request (setup:cuda asks for cuda12)', () => {
    const out = spawnSync(
      process.execPath,
      ['-e', "require('global-agent').bootstrap(); console.log(process.env.ONNXRUNTIME_NODE_INSTALL)"],
      { cwd: ortDir, env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'cuda12' }, encoding: 'utf8' },
    );
    expect(out.stdout.trim()).toBe('cuda12');
  });
});
