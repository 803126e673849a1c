/**
 * Every graph the engine creates (CLIP, T5, the step graph with its If/Loop bodies, the VAE decoder and encoder), in
 * every provider's form (CPU fp32, CUDA bf16, WebGPU fp16) and for every weight form (bf16, int8, int4, fp8, GGUF
 * Q4_0, Q8_0, Q4_1, Q5_1), checked node by node against the committed allow-lists of ONNX Runtime 1.29
 * (src/engine/runtime/kernels/, README there). A graph change that adds a node a provider has no kernel for fails here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Graph } from '../../src/engine/onnx/graph.ts';
import {
  allowList,
  nodeSignatures,
  signatureKey,
  unsupportedNodes,
  type NodeSignature,
} from '../../src/engine/runtime/kernel-signatures.ts';
import { createSession } from '../../src/engine/runtime/session.ts';
import { engineGraphs, PROVIDERS, WEIGHT_FORMS, type BuiltGraph } from '../../scripts/kernel-allowlist/graphs.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-allow-'));
let graphs: BuiltGraph[] = [];
const sigs = new Map<BuiltGraph, NodeSignature[]>();
beforeAll(() => {
  graphs = WEIGHT_FORMS.flatMap((f) => engineGraphs(root, f));
  for (const g of graphs) sigs.set(g, nodeSignatures(g.graph.toModel()));
}, 120_000);
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const where = (g: BuiltGraph) => `${g.provider} ${g.weights} ${g.part}`;

describe('graphs every provider accepts', () => {
  it('covers every provider × weight form × graph, with If and Loop bodies', () => {
    expect(graphs).toHaveLength(PROVIDERS.length * WEIGHT_FORMS.length * 5);
    const ops = (p: string) =>
      new Set(graphs.filter((g) => g.provider === p).flatMap((g) => sigs.get(g)!.map((s) => s.op)));
    expect(ops('cpu')).toContain('Loop');
    expect(ops('webgpu')).toContain('If');
    // Body nodes are collected: the regional blocks' attention lives only inside the Loop/If bodies.
    const step = graphs.find((g) => g.provider === 'webgpu' && g.part === 'step')!;
    expect(sigs.get(step)!.some((s) => s.node.includes('/then/'))).toBe(true);
  });

  it("has no node outside its provider's allow-list (folded nodes: the CPU's)", () => {
    const failures = graphs.flatMap((g) =>
      unsupportedNodes(g.graph.toModel(), g.provider).map((s) => `${where(g)}: ${s.node} ${signatureKey(s)}`),
    );
    expect(failures).toEqual([]);
    const counts = Object.fromEntries(PROVIDERS.map((p) => [p, allowList(p).size]));
    process.stdout.write(`allow-list signatures: ${JSON.stringify(counts)}\n`);
  });

  it('fixed: CLIP, T5 and the VAE take the provider form (no FusedMatMul on WebGPU or CUDA)', () => {
    for (const g of graphs.filter((x) => x.provider !== 'cpu'))
      expect(g.graph.usesOp('FusedMatMul'), where(g)).toBe(false);
    expect(graphs.find((g) => g.provider === 'cpu' && g.part === 'clip')!.graph.usesOp('FusedMatMul')).toBe(true);
  });

  it('fixed: GGUF token embeddings unpack nibbles without BitShift/BitwiseAnd; affine T5 on WebGPU mixes no types', () => {
    for (const g of graphs.filter((x) => x.weights.startsWith('gguf-'))) {
      expect(g.graph.usesOp('BitShift'), where(g)).toBe(false);
      expect(g.graph.usesOp('BitwiseAnd'), where(g)).toBe(false);
    }
    const mixed = graphs
      .filter((g) => g.provider === 'webgpu' && (g.weights === 'gguf-q4_1' || g.weights === 'gguf-q5_1'))
      .flatMap((g) => sigs.get(g)!.filter((s) => s.op === 'Sub' && new Set(s.inputs).size > 1));
    expect(mixed).toEqual([]);
  });

  it('fixed: fp8 weights are widened at load on WebGPU (no fp8 DequantizeLinear, no Size gate); CUDA keeps them fp8', () => {
    const fp8 = (p: string) => graphs.filter((g) => g.provider === p && g.weights === 'fp8' && g.part !== 'clip');
    for (const g of fp8('webgpu')) {
      expect(g.graph.usesOp('DequantizeLinear'), where(g)).toBe(false);
      expect(g.graph.usesOp('Size'), where(g)).toBe(false);
    }
    expect(fp8('cuda').some((g) => g.graph.usesOp('DequantizeLinear'))).toBe(true);
  });

  it('a node its provider has no kernel for is a session error that names the node and the op', async () => {
    // bf16 Add has no CPU kernel in ONNX Runtime 1.29 (measured; kernels/cpu.txt).
    const g = new Graph('bf16-add', { computeType: 'bfloat16' });
    const x = g.op('Cast', [g.input('x', 'float32', [2])], { to: 16 }, { dtype: 'bfloat16' });
    const y = g.op('Add', [x, x], {}, { name: 'the_add', dtype: 'bfloat16' });
    g.output(g.op('Cast', [y], { to: 1 }, { dtype: 'float32' }), 'y', 'float32', [2]);
    await expect(createSession(g, { executionProvider: 'cpu', threads: 1 })).rejects.toThrow(
      /the_add \(Add-23\(bfloat16, bfloat16\)\).*kernels\/cpu\.txt/s,
    );
  });
});
