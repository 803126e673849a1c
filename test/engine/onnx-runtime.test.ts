import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Graph, silu } from '../../src/engine/onnx/index.ts';
import { createSession, ProviderError, sessionOptions } from '../../src/engine/runtime/session.ts';
import { repoRoot } from '../support/fixtures.ts';

function tinyGraph(): Graph {
  const g = new Graph('tiny');
  g.output(silu(g.input('x', 'float32', [2])), 'y');
  return g;
}

const cudaLib = path.join(repoRoot, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so');

describe('ORT session creation', () => {
  it('passes threads and the external data folder as session options', () => {
    expect(sessionOptions({ executionProvider: 'cpu', threads: 0 })).toEqual({ executionProviders: ['cpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 });
    expect(sessionOptions({ executionProvider: 'cpu', threads: 3 }, '/w')).toMatchObject({
      intraOpNumThreads: 3,
      extra: { session: { model_external_initializers_file_folder_path: '/w' } },
    });
  });

  it.skipIf(existsSync(cudaLib))('a CUDA provider that is not installed is a clear error, not a CPU fallback', async () => {
    const err = await createSession(tinyGraph(), { executionProvider: 'cuda', threads: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as Error).message).toMatch(/execution provider "cuda" could not be loaded: .*\nTo fix: install the CUDA 12 provider with `npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12`/s);
  });

  it('measures session creation', async () => {
    const s = await createSession(tinyGraph(), { executionProvider: 'cpu', threads: 1 });
    expect(s.createMs).toBeGreaterThan(0);
    expect(s.session.outputNames).toEqual(['y']);
    await s.session.release();
  });
});
