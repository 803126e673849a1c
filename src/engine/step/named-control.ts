/**
 * If and Loop over named values: a branch or loop body returns an object, not a positional tuple, so the step
 * graph names every stream it carries through control flow. The values travel in the key order of the then-branch
 * (If) or of the initial state (Loop); both sides must return the same keys.
 */
import { forLoop, ifElse } from '../onnx/control.ts';
import type { Value } from '../onnx/graph.ts';

type Named = Record<string, Value>;

function named<T extends Named>(keys: (keyof T & string)[], values: Value[]): T {
  if (values.length !== keys.length)
    throw new Error(`internal error: ${values.length} values for ${keys.length} names (${keys.join(', ')})`);
  return Object.fromEntries(keys.map((k, i) => [k, values[i]])) as T;
}

function valuesOf<T extends Named>(keys: (keyof T & string)[], o: T): Value[] {
  return keys.map((k) => {
    const v = o[k];
    if (!v) throw new Error(`internal error: a branch returned no "${k}"`);
    return v;
  });
}

/** If(cond) then `then()` else `otherwise()`. */
export function ifThen<T extends Named>(cond: Value, then: () => T, otherwise: () => T): T {
  let keys: (keyof T & string)[] = [];
  const outs = ifElse(
    cond,
    () => {
      const t = then();
      keys = Object.keys(t);
      return valuesOf(keys, t);
    },
    () => valuesOf(keys, otherwise()),
  );
  return named(keys, outs);
}

/** for k in [0, trips): state = body(k, state), with k an int64 [1] value. */
export function loop<T extends Named>(trips: Value, state: T, body: (k: Value, state: T) => T): T {
  const keys = Object.keys(state);
  const outs = forLoop(trips, valuesOf(keys, state), (k, carried) => valuesOf(keys, body(k, named(keys, carried))));
  return named(keys, outs);
}
