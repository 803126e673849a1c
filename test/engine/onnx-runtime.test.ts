import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph, silu } from '../../src/engine/onnx/index.ts';
import { CUDA_MARKER, cudaProviderStatus, describeCudaStatus } from '../../src/engine/runtime/cuda-provider.ts';
import { createSession, ProviderError, sessionOptions } from '../../src/engine/runtime/session.ts';

function tinyGraph(): Graph {
  const g = new Graph('tiny');
  g.output(silu(g.input('x', 'float32', [2])), 'y');
  return g;
}

describe('ORT session creation', () => {
  it('passes threads and the external data folder as session options', () => {
    // 0 = every core the process may use, not ORT's own default (which used one core of two here).
    expect(sessionOptions({ executionProvider: 'cpu', threads: 0 })).toMatchObject({
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      intraOpNumThreads: os.availableParallelism(),
    });
    expect(sessionOptions({ executionProvider: 'cpu', threads: 3 }, '/w')).toMatchObject({
      intraOpNumThreads: 3,
      extra: { session: { model_external_initializers_file_folder_path: '/w' } },
    });
  });

  it('a CUDA provider that cannot load is an error naming the versions, what is missing and the fix; no CPU fallback', async () => {
    // No machine of this project's CI has a GPU: the provider is either absent (CI) or present without CUDA.
    const err = await createSession(tinyGraph(), { executionProvider: 'cuda', threads: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/execution provider "cuda" could not be loaded: /);
    expect(msg).toMatch(
      /onnxruntime-node 1\.29\.0 is installed; it needs the CUDA provider of ONNX Runtime 1\.29\.0 in .*bin\/napi-v6\/linux\/x64\/ \(found: (missing|ONNX Runtime 1\.29\.0)\)/,
    );
    const status = cudaProviderStatus();
    if (status.found === 'missing')
      expect(msg).toContain('Run `npm run setup:cuda` to install com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9');
    expect(msg).toMatch(
      /Missing on this host's library path: .*libcuda\.so\.1 \(the NVIDIA driver\).*libcudnn\.so\.9 \(cuDNN 9\)/,
    );
    expect(msg).toContain('Or set EXECUTION_PROVIDER=cpu.');
  });

  it('reports a provider of another ONNX Runtime release as the wrong version, with the command that fixes it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cuda-'));
    try {
      // The library's own version string wins over setup:cuda's marker (which only records what was copied).
      fs.writeFileSync(path.join(dir, 'libonnxruntime_providers_cuda.so'), 'no version here; libcudart.so.12');
      fs.writeFileSync(path.join(dir, CUDA_MARKER), JSON.stringify({ onnxruntime: '1.30.0' }));
      const s = cudaProviderStatus(dir);
      expect(s).toMatchObject({ ortNodeVersion: '1.29.0', expected: '1.29.0', found: '1.30.0', ready: false });
      expect(describeCudaStatus(s)).toMatch(/\(found: ONNX Runtime 1\.30\.0\)\.\nRun `npm run setup:cuda` to install/);
      expect(s.cudaMajor).toBe(12);
      fs.writeFileSync(path.join(dir, 'libonnxruntime_providers_cuda.so'), 'ort 1.29.0 built with libcudart.so.13');
      expect(cudaProviderStatus(dir)).toMatchObject({ found: '1.29.0', cudaMajor: 13 });
      fs.rmSync(path.join(dir, CUDA_MARKER));
      fs.writeFileSync(
        path.join(dir, 'libonnxruntime_providers_cuda.so'),
        Buffer.from('junk 1.3.9 1.28.1 more', 'latin1'),
      );
      expect(cudaProviderStatus(dir).found).toBe('1.28.1');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('measures session creation', async () => {
    const s = await createSession(tinyGraph(), { executionProvider: 'cpu', threads: 1 });
    expect(s.createMs).toBeGreaterThan(0);
    expect(s.session.outputNames).toEqual(['y']);
    await s.session.release();
  });
});
