/**
 * `npm run setup:cuda [-- --cuda 12|13] [--from <package.tgz | unpacked folder>]`: puts the CUDA execution provider
 * where onnxruntime-node 1.29.0 loads it, and says what the host still needs.
 *
 * Which build: `--cuda`, else the CUDA version the driver supports (nvidia-smi), else 13.
 *   - CUDA 13: the npm registry's package below (no NuGet);
 *   - CUDA 12: ONNX Runtime's own CUDA 12 provider, which onnxruntime-node's install script fetches from NuGet
 *     (`ONNXRUNTIME_NODE_INSTALL=cuda12`); hosts that cannot reach NuGet are told so.
 *
 * For CUDA 13:
 * 1. `npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9` into a temporary folder (≈ 180 MB download), or
 *    take what --from gives: the tarball, the unpacked package, or a folder with its .so files (hosts without the
 *    registry: copy one of those there first);
 * 2. copy its provider libraries into node_modules/onnxruntime-node/bin/napi-v6/linux/x64/ and write a marker
 *    naming the ONNX Runtime release they come from;
 * 3. check with ldd which CUDA 13 / cuBLAS 13 / cuDNN 9 libraries the loader cannot find, and print them.
 * Exit code 0 when the provider is installed (even if the host still lacks CUDA: that is printed), 1 on failure.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CUDA_MARKER,
  CUDA_PROVIDER_LIBS,
  driverCudaVersion,
  CUDA_PROVIDER_ORT_VERSION,
  CUDA_PROVIDER_PACKAGE,
  CUDA_PROVIDER_PACKAGE_VERSION,
  cudaProviderStatus,
  describeCudaStatus,
  ortNodeInstall,
  type CudaMarker,
} from '../src/engine/runtime/cuda-provider.ts';
import { Graph } from '../src/engine/onnx/graph.ts';
import { createSession, ort } from '../src/engine/runtime/session.ts';

const say = (m: string) => process.stdout.write(`${m}\n`);

function fail(m: string): never {
  process.stderr.write(`setup:cuda: ${m}\n`);
  process.exit(1);
}

const sizeText = (bytes: number) =>
  bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) fail(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr.trim()}`);
  return r.stdout;
}

/** The folder holding the provider libraries: the unpacked package (with or without its package/ folder) or the libraries themselves. */
function libFolder(unpacked: string): string {
  const candidates = [
    path.join(unpacked, 'Plugins', 'Linux', 'x64'),
    path.join(unpacked, 'package', 'Plugins', 'Linux', 'x64'),
    unpacked,
  ];
  const dir = candidates.find((d) => existsSync(path.join(d, 'libonnxruntime_providers_cuda.so')));
  if (!dir)
    fail(
      `${unpacked} holds no libonnxruntime_providers_cuda.so (nor Plugins/Linux/x64/ of the ${CUDA_PROVIDER_PACKAGE} package)`,
    );
  return dir;
}

function unpack(tgz: string, into: string): string {
  run('tar', ['-xzf', tgz, '-C', into, '--wildcards', 'package/Plugins/Linux/x64/*.so', 'package/package.json'], into);
  return path.join(into, 'package');
}

async function main(): Promise<void> {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    fail(`the CUDA provider package is for Linux x64; this is ${process.platform}/${process.arch}`);
  const args = process.argv.slice(2);
  const cudaAt = args.indexOf('--cuda');
  const asked = cudaAt >= 0 ? args[cudaAt + 1] : undefined;
  if (cudaAt >= 0 && asked !== '12' && asked !== '13') fail('--cuda takes 12 or 13');
  const driver = driverCudaVersion();
  const driverMajor = driver ? Number(driver.split('.')[0]) : undefined;
  const major: 12 | 13 = asked ? (Number(asked) as 12 | 13) : driverMajor === 12 ? 12 : 13;
  say(
    driver
      ? `the NVIDIA driver supports CUDA ${driver}; installing the CUDA ${major} provider${asked ? ' (--cuda)' : ''}`
      : `no NVIDIA driver found (nvidia-smi); installing the CUDA ${major} provider${asked ? '' : ' (the default; --cuda 12 for ONNX Runtime’s own CUDA 12 build)'}`,
  );
  if (driverMajor !== undefined && driverMajor < major)
    fail(
      `the driver supports CUDA ${driver}, older than the CUDA ${major} provider needs: ${driverMajor >= 12 ? 'use `npm run setup:cuda -- --cuda 12`' : 'update the NVIDIA driver (CUDA 12 needs 525+, CUDA 13 needs 580+)'}`,
    );
  const fromAt = args.indexOf('--from');
  const from = fromAt >= 0 ? args[fromAt + 1] : undefined;
  if (fromAt >= 0 && !from) fail('--from needs a path: the package tarball or its unpacked folder');

  const ort = ortNodeInstall();
  if (ort.version !== CUDA_PROVIDER_ORT_VERSION) {
    fail(
      `onnxruntime-node ${ort.version} is installed but the provider is ONNX Runtime ${CUDA_PROVIDER_ORT_VERSION}'s; package.json pins onnxruntime-node ${CUDA_PROVIDER_ORT_VERSION}: run \`npm ci\` first`,
    );
  }
  if (major === 12) {
    installCuda12(ort.binDir);
    return report();
  }
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-cuda-'));
  try {
    let unpacked: string;
    if (from && existsSync(from) && statSync(from).isDirectory()) {
      unpacked = from;
      say(`using the unpacked package in ${from}`);
    } else if (from) {
      if (!existsSync(from)) fail(`--from ${from} does not exist`);
      unpacked = unpack(path.resolve(from), tmp);
      say(`unpacked ${from}`);
    } else {
      const spec = `${CUDA_PROVIDER_PACKAGE}@${CUDA_PROVIDER_PACKAGE_VERSION}`;
      say(`downloading ${spec} from the npm registry (about 180 MB)…`);
      run('npm', ['pack', spec, '--pack-destination', tmp, '--silent'], tmp);
      const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
      if (!tgz) fail(`npm pack ${spec} wrote no tarball`);
      unpacked = unpack(path.join(tmp, tgz), tmp);
    }
    const src = libFolder(unpacked);
    const copied: string[] = [];
    for (const lib of CUDA_PROVIDER_LIBS) {
      if (!existsSync(path.join(src, lib))) continue;
      copyFileSync(path.join(src, lib), path.join(ort.binDir, lib));
      copied.push(lib);
      say(`copied ${lib} (${sizeText(statSync(path.join(src, lib)).size)}) → ${ort.binDir}/`);
    }
    const marker: CudaMarker = {
      package: CUDA_PROVIDER_PACKAGE,
      packageVersion: CUDA_PROVIDER_PACKAGE_VERSION,
      onnxruntime: CUDA_PROVIDER_ORT_VERSION,
      installedAt: new Date().toISOString(),
      files: copied,
    };
    writeFileSync(path.join(ort.binDir, CUDA_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  return report();
}

/** ONNX Runtime's CUDA 12 provider through onnxruntime-node's own install script (NuGet). */
function installCuda12(binDir: string): void {
  const script = path.join(binDir, '..', '..', '..', '..', 'script', 'install.js');
  say('downloading ONNX Runtime 1.29.0’s CUDA 12 provider from NuGet (onnxruntime-node’s install script)…');
  const r = spawnSync(process.execPath, [script], {
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'cuda12' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0)
    fail(
      `the CUDA 12 provider could not be downloaded (${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0]}). ` +
        'NuGet must be reachable for CUDA 12; without it, use a CUDA 13 driver (580+) and `npm run setup:cuda -- --cuda 13`.',
    );
  const marker: CudaMarker = {
    package: 'Microsoft.ML.OnnxRuntime.Gpu.Linux (NuGet)',
    packageVersion: CUDA_PROVIDER_ORT_VERSION,
    onnxruntime: CUDA_PROVIDER_ORT_VERSION,
    installedAt: new Date().toISOString(),
    files: CUDA_PROVIDER_LIBS.filter((f) => existsSync(path.join(binDir, f))),
  };
  writeFileSync(path.join(binDir, CUDA_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
}

/** What is installed and missing; with a GPU present, a one-node session on CUDA proves the provider loads. */
async function report(): Promise<void> {
  const status = cudaProviderStatus();
  say(describeCudaStatus(status));
  if (!status.ready) {
    say(
      'The provider is installed; EXECUTION_PROVIDER=cuda will work once the libraries above are on the library path.',
    );
    return;
  }
  if (!driverCudaVersion()) {
    say('The CUDA provider is installed and its libraries resolve; no GPU here to load it on.');
    return;
  }
  const g = new Graph('setup-cuda-check');
  const x = g.input('x', 'float32', [4]);
  g.output(g.op('Add', [x, x]), 'y', 'float32', [4]);
  try {
    const s = await createSession(g, { executionProvider: 'cuda', threads: 1 });
    const y = await s.session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [4]) });
    await s.session.release();
    if ((y.y!.data as Float32Array)[3] !== 8) fail('a one-node session on CUDA returned a wrong result');
    say(`A one-node session ran on CUDA (created in ${s.createMs.toFixed(0)} ms): set EXECUTION_PROVIDER=cuda.`);
  } catch (e) {
    fail(`the provider is installed but a one-node session on CUDA failed:\n${(e as Error).message}`);
  }
}

await main();
