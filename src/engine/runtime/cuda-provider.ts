/**
 * Where onnxruntime-node looks for the CUDA execution provider, what is there, and what the host still lacks.
 *
 * onnxruntime-node ships no CUDA provider; its install script would fetch one from NuGet (which this project's
 * machines cannot reach, so package.json denies that script). The npm package below holds the provider of
 * ONNX Runtime 1.29.0 built for CUDA 13: `npm run setup:cuda` (scripts/setup-cuda.ts) copies its libraries into
 * onnxruntime-node's binary folder, where `libonnxruntime.so.1` dlopens them, and writes a marker file naming
 * what it installed. The same checks produce the ProviderError text (session.ts) and the script's report.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The npm package that carries the CUDA provider, pinned: it is built from ONNX Runtime 1.29.0. */
export const CUDA_PROVIDER_PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu';
export const CUDA_PROVIDER_PACKAGE_VERSION = '0.4.9';
/** The ONNX Runtime release that package's libraries come from; onnxruntime-node must be the same release. */
export const CUDA_PROVIDER_ORT_VERSION = '1.29.0';
/** Libraries copied from the package (TensorRT's is 0.9 MB, so it comes along; it needs TensorRT on the host). */
export const CUDA_PROVIDER_LIBS = [
  'libonnxruntime_providers_shared.so',
  'libonnxruntime_providers_cuda.so',
  'libonnxruntime_providers_tensorrt.so',
];
/** Written next to the libraries by setup:cuda. */
export const CUDA_MARKER = 'scenewright-cuda-provider.json';
export const SETUP_COMMAND = 'npm run setup:cuda';

/**
 * What the provider needs from the host, by soname. The provider links the first five; cuDNN is dlopened at the
 * first convolution or attention kernel that wants it, so it is checked separately.
 */
export function hostLibs(cudaMajor: 12 | 13 = 13): { soname: string; what: string }[] {
  return [
    { soname: 'libcuda.so.1', what: 'the NVIDIA driver' },
    { soname: `libcudart.so.${cudaMajor}`, what: `CUDA ${cudaMajor} runtime` },
    { soname: `libcublas.so.${cudaMajor}`, what: `cuBLAS ${cudaMajor}` },
    { soname: `libcublasLt.so.${cudaMajor}`, what: `cuBLAS ${cudaMajor} (Lt)` },
    { soname: 'libcurand.so.10', what: `cuRAND (CUDA ${cudaMajor})` },
    { soname: 'libcudnn.so.9', what: 'cuDNN 9' },
  ];
}
export const HOST_LIBS = hostLibs(13);

/** The CUDA major a provider library was built for, from the runtime it links (libcudart.so.12 / .13). */
export function providerCudaMajor(file: string): 12 | 13 | undefined {
  const m = /libcudart\.so\.(1[23])/.exec(readFileSync(file).toString('latin1'));
  return m ? (Number(m[1]) as 12 | 13) : undefined;
}

/** The CUDA version the installed NVIDIA driver supports ("13.0"), from nvidia-smi; undefined without a driver. */
export function driverCudaVersion(): string | undefined {
  const r = spawnSync('nvidia-smi', [], { encoding: 'utf8' });
  if (r.error || r.status !== 0 || typeof r.stdout !== 'string') return undefined;
  return /CUDA Version:\s*([0-9.]+)/.exec(r.stdout)?.[1];
}

const require = createRequire(import.meta.url);

/** onnxruntime-node's installed version and the folder its Linux x64 binaries (and providers) live in. */
export function ortNodeInstall(): { version: string; binDir: string } {
  const pkg = require.resolve('onnxruntime-node/package.json');
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  return { version, binDir: path.join(path.dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch) };
}

export interface CudaMarker {
  package: string;
  packageVersion: string;
  onnxruntime: string;
  installedAt: string;
  files: string[];
}

export interface CudaProviderStatus {
  ortNodeVersion: string;
  binDir: string;
  expected: string;
  /** The provider's ONNX Runtime version, read from the library (else the marker's); 'missing' when absent. */
  found: string;
  /** The CUDA major the provider was built for (its linked runtime), when installed. */
  cudaMajor?: 12 | 13;
  /** Host libraries the provider cannot resolve (soname and what it is). */
  missing: { soname: string; what: string }[];
  /** True when nothing is missing and the versions agree. */
  ready: boolean;
}

/** The ORT release string inside a provider library ("1.29.0"), when one can be found. */
function versionInLibrary(file: string): string | undefined {
  // The provider embeds ORT's version as a lone string; read it without loading the library. Other version-like
  // strings in it (a bundled "1.3.9") have a one-digit minor; ORT releases since 2021 have two.
  const text = readFileSync(file).toString('latin1');
  for (const m of text.matchAll(/(?<![0-9A-Za-z._-])(1\.\d{2}\.\d{1,2})(?![0-9A-Za-z._-])/g)) return m[1];
  return undefined;
}

/** The ORT version setup:cuda recorded, if its marker is there and readable. */
function markerVersion(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as Partial<CudaMarker>).onnxruntime;
  } catch {
    return undefined;
  }
}

/** Sonames `ldd` reports as "not found" for a library (empty when ldd is unavailable). */
export function unresolvedLibraries(file: string): string[] {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  if (r.error || typeof r.stdout !== 'string') return [];
  return [...r.stdout.matchAll(/^\s*(\S+)\s+=>\s+not found/gm)].map((m) => m[1]!);
}

/** Whether the dynamic loader can find a soname (ldconfig's cache, then LD_LIBRARY_PATH). */
export function loaderFinds(soname: string): boolean {
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  if (dirs.some((d) => existsSync(path.join(d, soname)))) return true;
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  return typeof r.stdout === 'string' && r.stdout.split('\n').some((l) => l.trim().startsWith(`${soname} `));
}

export function cudaProviderStatus(binDir = ortNodeInstall().binDir): CudaProviderStatus {
  const { version } = ortNodeInstall();
  const lib = path.join(binDir, 'libonnxruntime_providers_cuda.so');
  let found = 'missing';
  if (existsSync(lib)) {
    const markerFile = path.join(binDir, CUDA_MARKER);
    found = versionInLibrary(lib) ?? markerVersion(markerFile) ?? 'unknown version';
  }
  const cudaMajor = found === 'missing' ? undefined : providerCudaMajor(lib);
  const unresolved = found === 'missing' ? [] : unresolvedLibraries(lib);
  // ldd on the installed provider is the loader's own answer; cuDNN (dlopened) and a provider not yet installed
  // are looked up by soname.
  const linked = (soname: string) => found !== 'missing' && !soname.startsWith('libcudnn');
  const missing = hostLibs(cudaMajor ?? 13).filter((l) =>
    linked(l.soname) ? unresolved.includes(l.soname) : !loaderFinds(l.soname),
  );
  const ready = found === CUDA_PROVIDER_ORT_VERSION && version === CUDA_PROVIDER_ORT_VERSION && missing.length === 0;
  return { ortNodeVersion: version, binDir, expected: CUDA_PROVIDER_ORT_VERSION, found, cudaMajor, missing, ready };
}

/** The lines of a CUDA ProviderError / setup report: versions, what is missing, the command that fixes it. */
export function describeCudaStatus(s: CudaProviderStatus): string {
  const lines = [
    `onnxruntime-node ${s.ortNodeVersion} is installed; it needs the CUDA provider of ONNX Runtime ${s.expected} in ${s.binDir}/ ` +
      `(found: ${s.found === 'missing' ? 'missing' : `ONNX Runtime ${s.found}`}).`,
  ];
  if (s.ortNodeVersion !== s.expected)
    lines.push(`onnxruntime-node must be ${s.expected} (package.json pins it): run \`npm ci\`.`);
  if (s.found !== s.expected)
    lines.push(
      `Run \`${SETUP_COMMAND}\` to install ${CUDA_PROVIDER_PACKAGE}@${CUDA_PROVIDER_PACKAGE_VERSION} (ONNX Runtime ${s.expected} built for CUDA 13) there.`,
    );
  if (s.missing.length) {
    lines.push(
      `Missing on this host's library path: ${s.missing.map((m) => `${m.soname} (${m.what})`).join(', ')}. ` +
        `Install the NVIDIA driver, the CUDA ${s.cudaMajor ?? 13} runtime, cuBLAS ${s.cudaMajor ?? 13} and cuDNN 9 and put their lib folders on LD_LIBRARY_PATH (docs/gpu.md).`,
    );
  }
  return lines.join('\n');
}
