import { ONNX_DTYPE, type DType, type Value } from './graph.ts';

/**
 * Typed wrappers for the plain ONNX operators the graphs use. Each takes Values of one Graph and returns
 * the output Value; shape/axes arguments are plain numbers (turned into int64 constants).
 */

const bin =
  (type: string) =>
  (a: Value, b: Value): Value =>
    a.graph.op(type, [a, b]);
const un =
  (type: string) =>
  (x: Value): Value =>
    x.graph.op(type, [x]);

export const add = bin('Add');
export const sub = bin('Sub');
export const mul = bin('Mul');
export const div = bin('Div');
export const matmul = bin('MatMul');
export const neg = un('Neg');
export const sin = un('Sin');
export const cos = un('Cos');
export const sigmoid = un('Sigmoid');

/** a · s (s a plain number). */
export function mulScalar(a: Value, s: number): Value {
  return mul(a, a.graph.scalar(s, a.dtype ?? a.graph.computeType));
}

export function cast(x: Value, to: DType): Value {
  if (x.dtype === to) return x;
  return x.graph.op('Cast', [x], { to: ONNX_DTYPE[to] }, { dtype: to });
}

/** Reshape; 0 copies the input's dim, -1 is inferred (ONNX semantics, allowzero = 0). */
export function reshape(x: Value, shape: number[]): Value {
  return x.graph.op('Reshape', [x, x.graph.ints(shape)]);
}

export function transpose(x: Value, perm: number[]): Value {
  return x.graph.op('Transpose', [x], { perm });
}

export function concat(xs: Value[], axis: number): Value {
  const g = xs[0]!.graph;
  if (xs.length === 1) return xs[0]!;
  return g.op('Concat', xs, { axis });
}

/** Split along axis into pieces of the given sizes. */
export function split(x: Value, sizes: number[], axis: number): Value[] {
  return x.graph.opN('Split', [x, x.graph.ints(sizes)], sizes.length, { axis });
}

/** Split along axis into n equal pieces (the size must be known to divide; ONNX checks at run time). */
export function chunk(x: Value, n: number, axis: number): Value[] {
  return x.graph.opN('Split', [x], n, { axis, num_outputs: n });
}

/** x[starts:ends] on the given axes (ends may be huge for "to the end"; negative values count from the end). */
export function slice(x: Value, starts: number[], ends: number[], axes: number[], steps?: number[]): Value {
  const g = x.graph;
  const inputs = [x, g.ints(starts), g.ints(ends), g.ints(axes)];
  if (steps) inputs.push(g.ints(steps));
  return g.op('Slice', inputs);
}

/** x[start:end] on one axis, with `end` taken from a run-time Value (e.g. a length read with shapeOf). */
export function sliceDynamic(x: Value, start: Value, end: Value, axis: number): Value {
  return x.graph.op('Slice', [x, start, end, x.graph.ints([axis])]);
}

export function gather(x: Value, indices: Value, axis: number): Value {
  return x.graph.op('Gather', [x, indices], { axis });
}

export function unsqueeze(x: Value, axes: number[]): Value {
  return x.graph.op('Unsqueeze', [x, x.graph.ints(axes)]);
}

export function softmax(x: Value, axis = -1): Value {
  return x.graph.op('Softmax', [x], { axis });
}

export function where(cond: Value, a: Value, b: Value): Value {
  return cond.graph.op('Where', [cond, a, b], {}, { dtype: a.dtype });
}

export function expand(x: Value, shape: Value): Value {
  return x.graph.op('Expand', [x, shape]);
}

/** The run-time shape of x as int64 [rank], or dims start..end of it. */
export function shapeOf(x: Value, start?: number, end?: number): Value {
  return x.graph.op('Shape', [x], { start, end }, { dtype: 'int64' });
}

/** Reshape to a run-time shape (an int64 [rank] Value, e.g. assembled with concat from shapeOf pieces). */
export function reshapeTo(x: Value, shape: Value): Value {
  return x.graph.op('Reshape', [x, shape]);
}

export function greater(a: Value, b: Value): Value {
  return a.graph.op('Greater', [a, b], {}, { dtype: 'bool' });
}

/** A zero-element constant: what a branch returns for a stream the step does not carry. */
export function empty(g: Value['graph'], dtype: DType, dims: number[]): Value {
  return dtype === 'float16' || dtype === 'bfloat16'
    ? g.constant(new Uint16Array(0), dims, dtype)
    : g.constant([], dims, dtype);
}
