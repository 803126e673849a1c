/**
 * Every node of a built graph as ONNX Runtime chooses its kernel: (domain, op, opset, input element types), If and
 * Loop bodies included, and the check of those signatures against a provider's allow-list
 * (src/engine/runtime/kernels/<provider>.txt; kernels/README.md says where each list comes from).
 *
 * Element types are inferred here from the graph's inputs and initializers through each op's output rule (most ops
 * give their first input's type), the way ORT's own type inference does for the ops the engine emits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AttributeProtoObject, GraphProtoObject, ModelProtoObject, NodeProtoObject } from '../onnx/proto.ts';

/** The providers (session.ts's ExecutionProvider; not imported, so that session.ts can import this file). */
export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

export const ELEM_TYPES: Record<number, string> = {
  1: 'float',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'double',
  12: 'uint32',
  13: 'uint64',
  16: 'bfloat16',
  17: 'float8e4m3fn',
};

export interface NodeSignature {
  /** 'ai.onnx' for the default domain. */
  domain: string;
  op: string;
  opset: number;
  /** One element type per input; '' for an omitted optional input, '?' where it could not be inferred. */
  inputs: string[];
  /** The node's name (the first node with this signature), for messages. */
  node: string;
  /** That node's attributes and inferred output types (scripts/kernel-allowlist builds one-node probes from them). */
  attribute: AttributeProtoObject[];
  outputs: string[];
  /**
   * Every input is an initializer or folded itself: ORT constant-folds the node at load, with the CPU provider's
   * kernel, so it never runs on the session's provider (a bf16 weight's Cast on WebGPU, for example).
   */
  folded: boolean;
}

export const signatureKey = (s: Pick<NodeSignature, 'domain' | 'op' | 'opset' | 'inputs'>): string =>
  `${s.domain} ${s.op} ${s.opset} ${s.inputs.join(',')}`;

/** Ops ORT does not constant-fold (DequantizeLinear keeps fp8 weights small; graph.ts). */
const NOT_FOLDED = new Set(['DequantizeLinear', 'QuantizeLinear', 'If', 'Loop', 'Scan']);

const BOOL_OPS = new Set(['Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or', 'IsNaN']);
const INT64_OPS = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);

function attr(n: NodeProtoObject, name: string) {
  return (n.attribute ?? []).find((a) => a.name === name);
}

/** Output element types of one node, given its input types (and, for If/Loop, its bodies' inferred types). */
function outputTypes(n: NodeProtoObject, ins: string[], body: (g: GraphProtoObject, bodyIns: string[]) => string[]) {
  const count = n.output.length;
  const same = (t: string | undefined) => Array<string>(count).fill(t ?? '?');
  switch (n.op_type) {
    case 'Cast':
      return same(ELEM_TYPES[attr(n, 'to')?.i ?? 0]);
    case 'Constant':
      return same(ELEM_TYPES[attr(n, 'value')?.t?.data_type ?? 0]);
    case 'ConstantOfShape':
      return same(ELEM_TYPES[attr(n, 'value')?.t?.data_type ?? 1]);
    case 'DequantizeLinear':
      return same(ins[1]);
    case 'QuantizeLinear':
      return same(ins[2] || 'uint8');
    case 'Where':
      return same(ins[1]);
    case 'TopK':
      return [ins[0] ?? '?', 'int64'];
    case 'If': {
      const then = attr(n, 'then_branch')?.g;
      return then ? body(then, []) : same('?');
    }
    case 'Loop': {
      const g = attr(n, 'body')?.g;
      // Body inputs: iteration (int64), condition (bool), then the carried values; outputs: condition, carried, scans.
      return g ? body(g, ['int64', 'bool', ...ins.slice(2)]).slice(1) : same('?');
    }
  }
  if (BOOL_OPS.has(n.op_type)) return same('bool');
  if (INT64_OPS.has(n.op_type)) return same('int64');
  return same(ins.find((t) => t !== '') ?? '?');
}

/** Every node signature of a model, root graph and subgraphs, once each (first node name kept). */
export function nodeSignatures(model: ModelProtoObject): NodeSignature[] {
  const opsets = new Map(model.opset_import.map((o) => [o.domain || 'ai.onnx', o.version]));
  const found = new Map<string, NodeSignature>();

  /** Walks a graph with the types visible to it; returns the types of its outputs. */
  const walk = (
    g: GraphProtoObject,
    outer: Map<string, string>,
    outerConstant: Set<string>,
    bodyInputs: string[],
  ): string[] => {
    const types = new Map(outer);
    const constant = new Set(outerConstant);
    for (const t of g.initializer) constant.add(t.name);
    g.input.forEach((v, i) => types.set(v.name, ELEM_TYPES[v.type.tensor_type.elem_type] ?? bodyInputs[i] ?? '?'));
    for (const t of g.initializer) types.set(t.name, ELEM_TYPES[t.data_type] ?? '?');
    for (const n of g.node) {
      const ins = n.input.map((name) => (name === '' ? '' : (types.get(name) ?? '?')));
      const domain = n.domain || 'ai.onnx';
      const outs = outputTypes(n, ins, (body, bodyIns) => walk(body, types, constant, bodyIns));
      n.output.forEach((o, i) => types.set(o, outs[i] ?? '?'));
      const given = n.input.filter((name) => name !== '');
      const folded =
        n.op_type === 'Constant' ||
        (!NOT_FOLDED.has(n.op_type) && given.length > 0 && given.every((name) => constant.has(name)));
      if (folded) for (const o of n.output) constant.add(o);
      const sig: NodeSignature = {
        domain,
        op: n.op_type,
        opset: opsets.get(domain) ?? 1,
        inputs: ins,
        node: n.name ?? '',
        attribute: n.attribute ?? [],
        outputs: outs,
        folded,
      };
      const key = `${signatureKey(sig)}${folded ? ' folded' : ''}`;
      if (!found.has(key)) found.set(key, sig);
    }
    return g.output.map((v) => ELEM_TYPES[v.type.tensor_type.elem_type] ?? types.get(v.name) ?? '?');
  };
  walk(model.graph, new Map(), new Set(), []);
  return [...found.values()];
}

const KERNELS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'kernels');

/** The committed allow-list of a provider: signature keys, one a line ('#' comments). */
export function allowList(provider: ExecutionProvider): Set<string> {
  const file = path.join(KERNELS_DIR, `${provider}.txt`);
  return new Set(
    fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#')),
  );
}

/**
 * The signatures of `model` that `provider` has no kernel for. Nodes ORT folds at load are checked against the CPU
 * list (folding runs them on the CPU provider); Constant nodes need no kernel.
 */
export function unsupportedNodes(model: ModelProtoObject, provider: ExecutionProvider): NodeSignature[] {
  const allowed = allowList(provider);
  const cpu = provider === 'cpu' ? allowed : allowList('cpu');
  return nodeSignatures(model).filter((s) => s.op !== 'Constant' && !(s.folded ? cpu : allowed).has(signatureKey(s)));
}

/** What a session error says when nodes have no kernel on the provider: node, op, types and what to do. */
export function describeUnsupported(nodes: NodeSignature[], provider: ExecutionProvider): string {
  const list = nodes
    .slice(0, 8)
    .map((s) => `${s.node} (${s.domain === 'ai.onnx' ? '' : `${s.domain}.`}${s.op}-${s.opset}(${s.inputs.join(', ')}))`)
    .join('; ');
  return (
    `${nodes.length} node kind(s) have no ${provider} kernel in ONNX Runtime 1.29: ${list}${nodes.length > 8 ? '; …' : ''}. ` +
    `The engine's graph forms are checked against src/engine/runtime/kernels/${provider}.txt (test/engine/provider-allowlist.test.ts); ` +
    'report this with the weights form (WEIGHTS, file format) in use, or choose another EXECUTION_PROVIDER or weights form.'
  );
}
