/**
 * Regenerates src/engine/runtime/kernels/{cpu,cuda,webgpu}.txt (kernels/README.md): run it when ONNX Runtime is
 * upgraded, and when a graph change adds a signature (after checking that the provider has the kernel).
 *
 *   node --import tsx scripts/kernel-allowlist/generate.ts [--check]
 *
 * cpu: measured. Every signature the engine's graphs have in any provider form gets a one-node model (the node's own
 *   attributes, inputs of its types) and a CPU session with optimizations off; ORT refuses one whose kernel it lacks
 *   ("Could not find an implementation"). If and Loop are listed without a probe (CPU registers them for every type).
 * cuda, webgpu: no GPU on the machines that run this, so the provider's form's signatures minus what ONNX Runtime
 *   1.29's binaries lack (NOT_IN rules below; evidence in /work/shared/ONNX-NOTES.md §13: the typeinfo names of the
 *   kernel classes compiled into libonnxruntime_providers_cuda.so and into onnxruntime-node's libonnxruntime.so.1).
 * Writes the files, or with --check prints what differs and exits 1.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import {
  encodeModel,
  type ModelProtoObject,
  type NodeProtoObject,
  type ValueInfoProtoObject,
} from '../../src/engine/onnx/proto.ts';
import {
  ELEM_TYPES,
  nodeSignatures,
  signatureKey,
  type NodeSignature,
} from '../../src/engine/runtime/kernel-signatures.ts';
import type { ExecutionProvider } from '../../src/engine/runtime/session.ts';
import { engineGraphs, PROVIDERS, WEIGHT_FORMS } from './graphs.ts';

const KERNELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/engine/runtime/kernels');
const TYPE_IDS = Object.fromEntries(Object.entries(ELEM_TYPES).map(([id, name]) => [name, Number(id)]));

/** Ops whose inputs share one type constraint T (ONNX schemas): mixed types have no kernel anywhere. */
const SAME_TYPE = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Equal', 'Greater', 'Less', 'Max', 'Min', 'Sum']);

/** What ONNX Runtime 1.29 has no kernel for, per provider (ONNX-NOTES §13). */
const NOT_IN: Record<'cuda' | 'webgpu', (s: NodeSignature) => string | undefined> = {
  cuda: (s) => {
    if (s.op === 'BitShift' || s.op.startsWith('Bitwise')) return 'no CUDA kernel';
    if (s.op === 'DequantizeLinear' && s.inputs[0] === 'float8e4m3fn' && s.inputs[1] === 'bfloat16')
      return 'CUDA DequantizeLinear fp8 → float/float16 only';
    return undefined;
  },
  webgpu: (s) => {
    if (['FusedMatMul', 'Size', 'Loop', 'BitShift'].includes(s.op) || s.op.startsWith('Bitwise'))
      return 'no WebGPU kernel';
    if (s.op === 'DequantizeLinear' && !['int8', 'uint8', 'int32'].includes(s.inputs[0]!))
      return 'WebGPU DequantizeLinear takes int8/uint8/int32';
    if (s.inputs.some((t) => t === 'bfloat16' || t === 'double' || t === 'float8e4m3fn'))
      return 'WebGPU has no bf16, double or fp8 tensors';
    return undefined;
  },
};

const mixed = (s: NodeSignature) => SAME_TYPE.has(s.op) && new Set(s.inputs.filter(Boolean)).size > 1;

function valueInfo(name: string, type: string): ValueInfoProtoObject {
  return { name, type: { tensor_type: { elem_type: TYPE_IDS[type] ?? 1 } } };
}

/** Whether the CPU provider creates a session for the node alone: true, or the reason it refuses. */
async function cpuAccepts(s: NodeSignature): Promise<true | string> {
  if (s.op === 'If' || s.op === 'Loop') return true;
  if (s.inputs.includes('?') || s.outputs.includes('?')) return 'types not inferred';
  // Node's binding takes no bf16 or fp8 graph inputs or outputs ("Unsupported data type: 16"): those travel as
  // float32 and are cast next to the probed node (CPU casts every one of them).
  const wide = (t: string) => t === 'bfloat16' || t === 'float8e4m3fn';
  const io = (t: string) => (wide(t) ? 'float' : t);
  const cast = (from: string, to: string, type: string): NodeProtoObject => ({
    input: [from],
    output: [to],
    name: `cast_${to}`,
    op_type: 'Cast',
    attribute: [{ name: 'to', type: 2, i: TYPE_IDS[type] }],
  });
  const inputs = s.inputs.map((t, i) => (!t ? '' : wide(t) ? `in${i}_cast` : `in${i}`));
  const model: ModelProtoObject = {
    ir_version: 10,
    opset_import: [
      { domain: '', version: s.domain === 'ai.onnx' ? s.opset : 23 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'probe',
      node: [
        ...s.inputs.flatMap((t, i) => (wide(t) ? [cast(`in${i}`, `in${i}_cast`, t)] : [])),
        {
          input: inputs,
          output: s.outputs.map((t, i) => (wide(t) ? `out${i}_raw` : `out${i}`)),
          name: 'probe',
          op_type: s.op,
          ...(s.domain === 'ai.onnx' ? {} : { domain: s.domain }),
          attribute: s.attribute,
        },
        ...s.outputs.flatMap((t, i) => (wide(t) ? [cast(`out${i}_raw`, `out${i}`, 'float')] : [])),
      ],
      initializer: [],
      input: s.inputs.flatMap((t, i) => (t ? [valueInfo(`in${i}`, io(t))] : [])),
      output: s.outputs.map((t, i) => valueInfo(`out${i}`, io(t))),
    },
  };
  try {
    const session = await ort.InferenceSession.create(encodeModel(model), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'disabled',
      logSeverityLevel: 4,
    });
    await session.release();
    return true;
  } catch (e) {
    return String((e as Error).message)
      .split('\n')[0]!
      .slice(0, 160);
  }
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-kernels-'));
  const byProvider = new Map<ExecutionProvider, Map<string, NodeSignature>>(PROVIDERS.map((p) => [p, new Map()]));
  try {
    for (const form of WEIGHT_FORMS)
      for (const g of engineGraphs(root, form))
        for (const s of nodeSignatures(g.graph.toModel()))
          if (s.op !== 'Constant') {
            // Folded nodes run on the CPU at load: probed for the CPU list, not listed for the GPU providers.
            if (s.folded) byProvider.get('cpu')!.set(signatureKey(s), s);
            else byProvider.get(g.provider)!.set(signatureKey(s), s);
          }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  const all = new Map([...byProvider.values()].flatMap((m) => [...m]));
  const lists: Record<ExecutionProvider, { keep: string[]; dropped: string[] }> = {
    cpu: { keep: [], dropped: [] },
    cuda: { keep: [], dropped: [] },
    webgpu: { keep: [], dropped: [] },
  };
  for (const [key, s] of all) {
    const ok = await cpuAccepts(s);
    if (ok === true) lists.cpu.keep.push(key);
    else lists.cpu.dropped.push(`${key}  # ${ok}`);
  }
  for (const p of ['cuda', 'webgpu'] as const)
    for (const [key, s] of byProvider.get(p)!) {
      const why = mixed(s) ? 'inputs of different types under one type constraint' : NOT_IN[p](s);
      if (why) lists[p].dropped.push(`${key}  # ${why}`);
      else lists[p].keep.push(key);
    }
  let differs = false;
  for (const p of PROVIDERS) {
    const text = [
      `# ${p}: (domain op opset input-types) that ONNX Runtime 1.29 runs on this provider; written by scripts/kernel-allowlist/generate.ts`,
      `# (${p === 'cpu' ? 'measured: one-node CPU sessions' : 'the engine’s signatures in this form minus what the 1.29 binaries lack'}; see kernels/README.md).`,
      ...lists[p].keep.sort(),
      '',
      '# Left out (not allowed), with the reason:',
      ...lists[p].dropped.sort().map((l) => `#   ${l}`),
      '',
    ].join('\n');
    const file = path.join(KERNELS, `${p}.txt`);
    if (check) {
      if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text) {
        differs = true;
        process.stdout.write(`${file} differs from what the generator writes now\n`);
      }
    } else {
      fs.mkdirSync(KERNELS, { recursive: true });
      fs.writeFileSync(file, text);
    }
    process.stdout.write(`${p}: ${lists[p].keep.length} allowed, ${lists[p].dropped.length} left out\n`);
  }
  if (differs) process.exit(1);
}

await main();
