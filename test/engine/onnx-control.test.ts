import { describe, expect, it } from 'vitest';
import {
  add,
  cast,
  clampHalf,
  concat,
  forLoop,
  gather,
  Graph,
  ifElse,
  linear,
  shapeOf,
  sliceDynamic,
} from '../../src/engine/onnx/index.ts';
import { decodeModel } from '../../src/engine/onnx/proto.ts';
import { createSession, ort } from '../../src/engine/runtime/session.ts';

const cpu = { executionProvider: 'cpu' as const, threads: 1 };
const bf16Ones = (n: number) => new Uint8Array(n * 2).map((_, i) => (i % 2 ? 0x3f : 0x80)); // bf16 1.0 = 0x3f80

/** x [R, 4] → each segment [off[k], off[k+1]) of rows multiplied by W (all ones) in a Loop; then ×W again if `flag`. */
function segmentGraph(): Graph {
  const g = new Graph('control', { computeType: 'float32' });
  const x = g.input('x', 'float32', ['R', 4]);
  const off = g.input('off', 'int64', ['K1']);
  const flag = g.input('flag', 'bool', [1]);
  const w = { dtype: 'bfloat16' as const, shape: [4, 4], data: bf16Ones(16) };
  const trips = add(shapeOf(off), g.ints([-1]));
  const [y] = forLoop(trips, [x], (k, [acc]) => {
    const a = gather(off, k, 0);
    const b = gather(off, add(k, g.ints([1])), 0);
    const seg = linear(sliceDynamic(acc!, a, b, 0), g.weight('w', w));
    return [concat([sliceDynamic(acc!, g.ints([0]), a, 0), seg, sliceDynamic(acc!, b, g.ints([1 << 30]), 0)], 0)];
  });
  const [z] = ifElse(
    flag,
    () => [linear(y!, g.weight('w', w))],
    () => [y!],
  );
  g.output(z!, 'z', 'float32');
  return g;
}

describe('control flow in built graphs (If, Loop)', () => {
  it('a weight used in a loop body, a branch and nowhere else is cast once, in the root graph', () => {
    const m = decodeModel(segmentGraph().toBytes());
    const casts = m.graph.node.filter((n) => n.op_type === 'Cast' && n.input[0] === 'w');
    expect(casts).toHaveLength(1);
    const loop = m.graph.node.find((n) => n.op_type === 'Loop')!;
    const body = loop.attribute!.find((a) => a.name === 'body')!.g!;
    expect(body.node.some((n) => n.op_type === 'Cast')).toBe(false);
    expect(
      m.graph.node
        .find((n) => n.op_type === 'If')!
        .attribute!.map((a) => a.name)
        .sort(),
    ).toEqual(['else_branch', 'then_branch']);
  });

  it('runs with any number of segments, zero included, and either branch', async () => {
    const { session } = await createSession(segmentGraph(), cpu);
    const run = async (rows: number, offsets: number[], flag: boolean) => {
      const out = await session.run({
        x: new ort.Tensor('float32', new Float32Array(rows * 4).fill(1), [rows, 4]),
        off: new ort.Tensor('int64', BigInt64Array.from(offsets.map(BigInt)), [offsets.length]),
        flag: new ort.Tensor('bool', Uint8Array.of(flag ? 1 : 0), [1]),
      });
      return { dims: out.z!.dims, data: Array.from(out.z!.data as Float32Array) };
    };
    // Rows 0..2 in two segments, each ×W (4), then ×W again (16).
    expect(await run(3, [0, 1, 3], true)).toEqual({ dims: [3, 4], data: new Array(12).fill(16) });
    // Only rows 0..1 are a segment; row 2 stays 1.
    expect(await run(3, [0, 2], false)).toEqual({ dims: [3, 4], data: [4, 4, 4, 4, 4, 4, 4, 4, 1, 1, 1, 1] });
    // No segments and no rows: the loop does not run and an empty tensor comes back.
    expect(await run(0, [0], false)).toEqual({ dims: [0, 4], data: [] });
    await session.release();
  });

  it('clampHalf bounds float16 activations to ±65504 and leaves other compute types alone', async () => {
    const g = new Graph('half', { computeType: 'float16' });
    const x = g.input('x', 'float32', [3]);
    g.output(cast(clampHalf(cast(x, 'float16')), 'float32'), 'y', 'float32');
    const { session } = await createSession(g, cpu);
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1e6, -1e6, 1.5), [3]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([65504, -65504, 1.5]);
    await session.release();
    const f32 = new Graph('single', { computeType: 'float32' });
    const v = f32.input('x', 'float32', [1]);
    expect(clampHalf(v)).toBe(v);
  });
});
