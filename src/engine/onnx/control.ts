import type { Value } from './graph.ts';
import { reshape } from './ops.ts';

/**
 * Control flow over subgraphs: If (a stream that a step may or may not carry) and Loop (one iteration per stream
 * of a varying count). Bodies read weights and earlier values of the enclosing graph by name, so one set of
 * weights serves every branch and iteration; nothing is copied per iteration.
 */

/** If(cond) then `then()` else `otherwise()`; both return the same number of values of the same types. */
export function ifElse(cond: Value, then: () => Value[], otherwise: () => Value[]): Value[] {
  const g = cond.graph;
  let types: Value['dtype'][] = [];
  const thenBranch = g.subgraph('then', [], () => {
    const outs = then();
    types = outs.map((v) => v.dtype);
    return outs;
  });
  const elseBranch = g.subgraph('else', [], otherwise);
  const outs = g.opN('If', [cond], types.length, { then_branch: thenBranch, else_branch: elseBranch });
  return outs.map((v, i) => (types[i] ? new (v.constructor as typeof Value)(g, v.name, types[i]) : v));
}

/**
 * for k in [0, trips): state = body(k, state). `trips` is an int64 [1] value; zero trips returns the initial state
 * unchanged. `body` gets k as an int64 [1] value and must return values of the same types as `state`.
 */
export function forLoop(trips: Value, state: Value[], body: (k: Value, state: Value[]) => Value[]): Value[] {
  const g = trips.graph;
  const inputs = [
    { name: 'k', dtype: 'int64' as const, shape: [] },
    { name: 'cond', dtype: 'bool' as const, shape: [] },
    ...state.map((v, i) => ({ name: `s${i}`, dtype: v.dtype!, shape: undefined })),
  ];
  const loopBody = g.subgraph('loop', inputs, (k, cond, ...carried) => [cond!, ...body(reshape(k!, [1]), carried)]);
  const outs = g.opN('Loop', [reshape(trips, []), null, ...state], state.length, { body: loopBody });
  return outs.map((v, i) => new (v.constructor as typeof Value)(g, v.name, state[i]!.dtype));
}
