/**
 * The GPU check of issue 11: one prepared script for a lent GPU machine, finished well inside 10 minutes, that
 * prints everything at once (and writes results.json):
 *   1. the realscale workload (bench/realscale.ts: layouts with 3, 2, 5, 1 regions twice, a repaint and a repaint
 *      of it, one long-lived engine) on the `wide` preset, per provider;
 *   2. plain and RAG steps at FLUX.1-schnell's width (3072, 24 × 128, T5 width 4096; 1 double + 2 single blocks) at
 *      1024², projected to the full 19 + 38 blocks (both block kinds cost 24·D² per token plus attention): s/step and
 *      RAG ÷ plain (goals: 4 schnell steps ≤ 0.9 s; S = 2 ≤ 1.6× plain);
 *   3. weight forms (bench/weights.ts: bf16, int8, int4, fp8, GGUF Q8_0/Q4_0) on CUDA at 1024²;
 *   4. peak GPU memory (nvidia-smi, sampled every 100 ms) next to every time.
 *
 *   node --import tsx bench/gpu.ts [out dir] [provider…]     (default: /tmp/gpu-bench cuda webgpu)
 *
 * The device machine reaches no network and takes 64 MiB per call: run `npm run setup:cuda` here, split the two
 * provider libraries into 60 MiB pieces under a git-ignored folder, carry them over a few calls onto the warm
 * machine, join them into node_modules/onnxruntime-node/bin/napi-v6/linux/x64/ there, then run this script once.
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../src/engine/checkpoint/index.ts';
import { benchSteps } from './rag-workload.ts';
import { PLAIN_SIGNATURE, type StepSignature } from '../src/engine/step/signature.ts';
import type { ExecutionProvider } from '../src/engine/runtime/session.ts';
import { writeTinyModel } from '../src/engine/tiny-model/make.ts';
import { repoRoot } from './support.ts';

const [outDir = '/tmp/gpu-bench', ...args] = process.argv.slice(2);
const providers = (args.length ? args : ['cuda', 'webgpu']) as ExecutionProvider[];
const say = (s: string) => process.stdout.write(`${s}\n`);
fs.mkdirSync(outDir, { recursive: true });

/** Peak GPU memory in use while `fn` runs (MiB), sampled with nvidia-smi; undefined without nvidia-smi. */
async function withGpuPeak<T>(fn: () => Promise<T>): Promise<{ value: T; peakMiB?: number }> {
  let peak: number | undefined;
  const sample = () =>
    execFile('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits'], (err, out) => {
      if (!err) peak = Math.max(peak ?? 0, Number.parseFloat(out));
    });
  sample();
  const timer = setInterval(sample, 100);
  try {
    return { value: await fn(), peakMiB: peak };
  } finally {
    clearInterval(timer);
  }
}

const wideDir = path.join(outDir, 'wide-model-schnell');
if (!fs.existsSync(path.join(wideDir, 'model_index.json'))) {
  const t0 = Date.now();
  await writeTinyModel({ out: wideDir, preset: 'wide', variant: 'schnell', seed: 7, force: true });
  say(`wide checkpoint written in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const results: Record<string, unknown>[] = [];

// 1. The realscale workload, each provider in its own process (a provider that fails to load is reported, not fatal).
for (const ep of providers) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'bench', 'realscale.ts'), wideDir], {
    env: { ...process.env, EXECUTION_PROVIDER: ep, ORT_THREADS: '0' },
    encoding: 'utf8',
    timeout: 240_000,
  });
  say(
    `--- realscale on ${ep} (exit ${r.status}) ---\n${r.stdout}${r.status ? r.stderr.split('\n').slice(-8).join('\n') : ''}`,
  );
  results.push({ part: 'realscale', ep, status: r.status, stdout: r.stdout });
}

// 2. Plain and RAG steps at schnell width, 1024².
const sig = (s: Partial<StepSignature>): StepSignature => ({ ...PLAIN_SIGNATURE, ...s });
const cases: [string, StepSignature][] = [
  ['plain', PLAIN_SIGNATURE],
  ['S=2', sig({ cells: 2 })],
  ['S=4', sig({ cells: 4 })],
  ['K=2 S=2 HB', sig({ boxes: 2, cells: 2 })],
  ['K=8 S=8 HB', sig({ boxes: 8, cells: 8 })],
  ['repaint S=2', sig({ cells: 2, repaint: true })],
];
const ck = loadCheckpoint(wideDir);
const blocks = ck.transformerConfig.numLayers + ck.transformerConfig.numSingleLayers;
for (const ep of providers) {
  try {
    const { value: measured, peakMiB } = await withGpuPeak(() =>
      benchSteps(
        ck,
        cases.map(([, s]) => s),
        {
          runtime: { executionProvider: ep, threads: 0 },
          runs: 5,
          width: 1024,
          height: 1024,
          textLength: 256,
        },
      ),
    );
    const plain = measured[0]!.minMs;
    say(
      `--- steps on ${ep}, schnell width 1024², ${blocks} blocks measured, projected to 57; peak GPU memory ${peakMiB ?? '?'} MiB ---`,
    );
    measured.forEach((m, i) => {
      const projected = (m.minMs / 1000) * (57 / blocks);
      const row = {
        part: 'steps',
        ep,
        case: cases[i]![0],
        ms: +m.minMs.toFixed(1),
        projectedStepS: +projected.toFixed(3),
        ratio: +(m.minMs / plain).toFixed(2),
        flopRatio: +(m.flops.total / measured[0]!.flops.total).toFixed(2),
        sessionS: +(m.createMs / 1000).toFixed(1),
        peakGpuMiB: peakMiB,
      };
      results.push(row);
      say(
        `${row.case.padEnd(12)} ${String(row.ms).padStart(8)} ms  projected ${row.projectedStepS} s/step  ÷ plain ${row.ratio} (FLOPs ${row.flopRatio})`,
      );
    });
    say(`schnell, 4 steps at 1024² projected: ${(4 * (plain / 1000) * (57 / blocks)).toFixed(2)} s (goal ≤ 0.9 s)`);
  } catch (e) {
    say(
      `--- steps on ${ep}: ${String((e as Error).message)
        .split('\n')
        .slice(0, 4)
        .join(' | ')}`,
    );
    results.push({ part: 'steps', ep, error: String((e as Error).message).slice(0, 600) });
  }
}
// 3. Weight forms (issue 9) on CUDA: bf16, int8, int4, fp8, GGUF Q8_0/Q4_0 at 1024², peak GPU memory per form's process.
if (providers.includes('cuda')) {
  const { value: r, peakMiB } = await withGpuPeak(async () =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'bench', 'weights.ts')], {
      env: { ...process.env, EXECUTION_PROVIDER: 'cuda', ORT_THREADS: '0', SIZE: '1024' },
      encoding: 'utf8',
      timeout: 300_000,
    }),
  );
  say(
    `--- weight forms on cuda (exit ${r.status}; peak GPU memory of the heaviest form ${peakMiB ?? '?'} MiB) ---\n${r.stdout}${r.status ? r.stderr.split('\n').slice(-8).join('\n') : ''}`,
  );
  results.push({ part: 'weights', ep: 'cuda', status: r.status, stdout: r.stdout, peakGpuMiB: peakMiB });
}
fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(results, null, 2));
