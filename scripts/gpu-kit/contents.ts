/**
 * What the GPU kit's tree holds, besides Node and the CUDA provider (build.ts):
 *   app/                      the project as it runs here (TypeScript through tsx, a production dependency)
 *   app/node_modules/         the production dependencies only (`npm ls --omit=dev`), trimmed of what a Linux x64
 *                             machine never loads: onnxruntime-node's other platforms (≈ 250 MB), better-sqlite3's
 *                             C sources and object files, type declarations packages
 *   shared/fixtures/tokenizers/  the CLIP and T5 tokenizer files, where the engine's DEFAULT_TOKENIZERS looks for them
 *                             (app/../shared/fixtures/tokenizers), so random checkpoints are written on the machine
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export interface KitEntry {
  from: string;
  /** Path inside the kit's tree. */
  to: string;
  /** Relative paths (from `from`) to leave out. */
  skip?: (rel: string) => boolean;
}

const APP_FILES = ['package.json', 'tsconfig.json', 'src', 'bench', 'bin', 'scripts', 'models'];

/** Package-specific trims: what the package holds for other platforms or for building it. */
const TRIMS: Record<string, (rel: string) => boolean> = {
  'onnxruntime-node': (rel) => /^bin\/napi-v6\/(?!linux(\/x64)?(\/|$))/.test(rel),
  'better-sqlite3': (rel) =>
    /^(deps|src)(\/|$)|^build\/(deps|Release\/(obj|obj\.target|\.deps|test_extension\.node))(\/|$)/.test(rel),
};

/** The production packages, as paths relative to the repository (node_modules/…, nested ones too). */
export function productionPackages(repoRoot: string): string[] {
  const r = spawnSync('npm', ['ls', '--omit=dev', '--parseable', '--all'], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 16 * 2 ** 20,
  });
  if (r.error || typeof r.stdout !== 'string' || !r.stdout.trim())
    throw new Error(`npm ls --omit=dev failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout
    .split('\n')
    .map((l) => path.relative(repoRoot, l.trim()))
    .filter((rel) => rel.startsWith('node_modules'))
    .filter((rel) => !/(^|\/)node_modules\/@types\//.test(rel));
}

export function kitTree(repoRoot: string, tokenizers: string): KitEntry[] {
  const app: KitEntry[] = APP_FILES.map((f) => ({ from: path.join(repoRoot, f), to: path.join('app', f) }));
  const modules: KitEntry[] = productionPackages(repoRoot).map((rel) => {
    const name = rel.replace(/^.*node_modules\//, '');
    const trim = TRIMS[name];
    return {
      from: path.join(repoRoot, rel),
      to: path.join('app', rel),
      // Nested node_modules are packages of their own in the list (dev-only ones are not).
      skip: (r: string) => r.startsWith('node_modules') || (trim ? trim(r) : false),
    };
  });
  const toks: KitEntry[] = ['clip-vit-large-patch14', 't5-v1_1-xxl'].map((d) => ({
    from: path.join(tokenizers, d),
    to: path.join('shared', 'fixtures', 'tokenizers', d),
  }));
  return [...app, ...modules, ...toks];
}
