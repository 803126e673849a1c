import os from 'node:os';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { UserError } from '../../config/errors.ts';
import type { Graph } from '../onnx/graph.ts';
import { cudaProviderStatus, describeCudaStatus } from './cuda-provider.ts';
import { describeUnsupported, unsupportedNodes } from './kernel-signatures.ts';

/**
 * ONNX Runtime sessions from in-memory graphs whose weights are external data in the user's files.
 *
 * The model is passed as bytes and ORT reads each initializer from `<folder>/<location>` at the offsets the
 * graph wrote, through the session option `session.model_external_initializers_file_folder_path` (no .onnx
 * file is written, nothing is copied).
 *
 * Load cost on CPU (float32 compute): ORT constant-folds every Cast(bf16 initializer → float32) while creating the
 * session, so the 16-bit weights and their float32 copies coexist at peak. Measured on the 2-core CI machine with
 * 4 linears of 4096×4096 bf16 (128 MB): session creation 2.5 s (about 19 s per GB of bf16), peak RSS +346 MB over
 * the pre-load baseline, +91 MB once loaded (less than the 256 MB of float32; how ORT then holds the folded
 * weights was not investigated). Graphs computing in bf16/f16 on a GPU
 * have no Cast to fold.
 */

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

export interface RuntimeOptions {
  executionProvider: ExecutionProvider;
  /** intra-op threads; 0 = every core this process may use (intraOpThreads). */
  threads: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /** More ORT session config entries (`session.*` keys without the prefix), e.g. { disable_prepacking: '1' }. */
  sessionConfig?: Record<string, string>;
}

/** A compiled model: its bytes plus the folder its external data is resolved against. */
export interface ModelBytes {
  name: string;
  bytes: Uint8Array;
  externalDataFolder?: string;
}

export interface Session {
  session: ort.InferenceSession;
  /** Wall time of InferenceSession.create, in milliseconds. */
  createMs: number;
}

/**
 * ORT's own default is one thread per physical core as it counts them, which on the 2-vCPU CI machine meant one:
 * a plain bench step took 0.97 s there and 0.54 s with 2 threads. 0 therefore means every core this process may
 * use (os.availableParallelism: the CPUs in this process's affinity mask).
 */
export function intraOpThreads(threads: number): number {
  return threads > 0 ? threads : os.availableParallelism();
}

/** What to do for each provider; README "GPU hosts" explains it step by step. */
function providerHelp(provider: ExecutionProvider): string {
  if (provider === 'cuda') return `${describeCudaStatus(cudaProviderStatus())}\nOr set EXECUTION_PROVIDER=cpu.`;
  if (provider === 'webgpu')
    return 'To fix: WebGPU needs a GPU with a Vulkan driver (Debian: libvulkan1 plus the vendor ICD); see README "GPU hosts", or set EXECUTION_PROVIDER=cpu.';
  return 'To fix: the CPU provider ships with onnxruntime-node; reinstall it (npm ci).';
}

/** Thrown when the configured execution provider cannot be loaded. Never silently replaced by CPU. */
export class ProviderError extends UserError {
  constructor(
    readonly provider: ExecutionProvider,
    cause: string,
  ) {
    super(`execution provider "${provider}" could not be loaded: ${cause}\n${providerHelp(provider)}`, 3);
    this.name = 'ProviderError';
  }
}

function looksLikeProviderFailure(msg: string, provider: ExecutionProvider): boolean {
  if (provider === 'cpu') return false;
  return /shared library|provider|adapter|webgpu|cuda|dawn|vulkan/i.test(msg);
}

/**
 * The graph form that runs well on a provider. WebGPU has no com.microsoft.FusedMatMul, so fused linears
 * fall back to the CPU (measured on an H200: 3.2 s instead of 0.17 s for three FLUX.1-width blocks at 1024²);
 * it also lacks float64 Sin/Cos (RoPE angles in float32) and bf16 (compute in float16). CUDA takes bf16.
 */
export function graphFormFor(ep: ExecutionProvider): {
  linear: 'fused' | 'transpose';
  ropePrecision: 'float64' | 'float32';
  computeType: 'float32' | 'float16' | 'bfloat16';
  regionalLoop?: 'loop' | 'unrolled';
} {
  // WebGPU has If but no Loop kernel: a Loop would run on the CPU provider with its state copied across every step.
  if (ep === 'webgpu')
    return { linear: 'transpose', ropePrecision: 'float32', computeType: 'float16', regionalLoop: 'unrolled' };
  if (ep === 'cuda') return { linear: 'transpose', ropePrecision: 'float64', computeType: 'bfloat16' };
  return { linear: 'fused', ropePrecision: 'float64', computeType: 'float32' };
}

export function sessionOptions(
  o: RuntimeOptions,
  externalDataFolder?: string,
  quantized = false,
): ort.InferenceSession.SessionOptions {
  const opts: ort.InferenceSession.SessionOptions = {
    executionProviders: [o.executionProvider],
    graphOptimizationLevel: o.graphOptimizationLevel ?? 'all',
    logSeverityLevel: o.logSeverityLevel ?? 3,
  };
  opts.intraOpNumThreads = intraOpThreads(o.threads);
  // CPU: no weight prepacking. ORT would keep a packed copy of every MatMul weight next to the folded float32 one
  // while loading: on the wide preset (677 M parameters) the step session took 22.8 s and peaked at 5.32 GiB with
  // prepacking, 3.0 s and 2.71 GiB without (one float32 copy is 2.52 GiB). MLAS packs panels per call instead,
  // O(K·N) against the GEMM's O(M·K·N) for M in the thousands of tokens.
  // Graphs with MatMulNBits are the exception: its kernel packs the small quantized weights once, where unpacked it
  // widens every weight to float32 on every call. Wide preset at int4 (bench/weights.ts): peak 2.65 → 0.73 GiB and
  // a step ≈ 5 → 2.2 s with prepacking; the few dense linears left in such a graph are small.
  const cpuDefaults = o.executionProvider === 'cpu' ? { disable_prepacking: quantized ? '0' : '1' } : {};
  const session = {
    ...cpuDefaults,
    ...o.sessionConfig,
    ...(externalDataFolder ? { model_external_initializers_file_folder_path: externalDataFolder } : {}),
  };
  if (Object.keys(session).length) opts.extra = { session };
  return opts;
}

/** Creates a session for a built graph or model bytes. Provider load failures become ProviderError. */
export async function createSession(model: Graph | ModelBytes, o: RuntimeOptions): Promise<Session> {
  const m: ModelBytes =
    'toBytes' in model
      ? { name: model.name, bytes: model.toBytes(), externalDataFolder: model.externalDataFolder() }
      : model;
  const t0 = performance.now();
  try {
    const session = await ort.InferenceSession.create(
      m.bytes,
      sessionOptions(o, m.externalDataFolder, 'toBytes' in model && model.usesOp('MatMulNBits')),
    );
    return { session, createMs: performance.now() - t0 };
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    if (looksLikeProviderFailure(msg, o.executionProvider) && !/Could not find an implementation/.test(msg))
      throw new ProviderError(o.executionProvider, msg);
    // A node the provider has no kernel for (in the CUDA form, 15 bf16 node kinds have no CPU kernel to fall back
    // to): name the nodes and ops, checked against the committed allow-list.
    const bad = 'toBytes' in model ? unsupportedNodes(model.toModel(), o.executionProvider) : [];
    const why = bad.length ? `\n${describeUnsupported(bad, o.executionProvider)}` : '';
    throw new Error(`ONNX Runtime could not load the ${m.name} graph on ${o.executionProvider}: ${msg}${why}`, {
      cause: e,
    });
  }
}

export { ort };
