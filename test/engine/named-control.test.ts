import { describe, expect, it } from 'vitest';
import { add, Graph, mul, shapeOf } from '../../src/engine/onnx/index.ts';
import { createSession, ort } from '../../src/engine/runtime/session.ts';
import { ifThen, loop } from '../../src/engine/step/named-control.ts';
import { cleanEstimate, ownSteps, storedTrajectory } from '../../src/engine/pipeline/main-source.ts';

const cpu = { executionProvider: 'cpu' as const, threads: 1 };

/**
 * a, b [2]: If(flag) swaps them by name; then a Loop of `n` trips (the length of `n`) carries {a, b} as
 * a ← a + b, b ← 2·b. Returns both, so a mixed-up order shows in the values.
 */
function namedGraph(): Graph {
  const g = new Graph('named', { computeType: 'float32' });
  const a = g.input('a', 'float32', [2]);
  const b = g.input('b', 'float32', [2]);
  const flag = g.input('flag', 'bool', [1]);
  const n = g.input('n', 'float32', ['K']);
  // The else branch lists its keys in the other order on purpose: values must follow the names.
  const swapped = ifThen(
    flag,
    () => ({ a: b, b: a }),
    () => ({ b, a }),
  );
  const out = loop(shapeOf(n), swapped, (_k, s) => ({ a: add(s.a, s.b), b: mul(s.b, g.scalar(2, 'float32')) }));
  g.output(out.a, 'out_a', 'float32');
  g.output(out.b, 'out_b', 'float32');
  return g;
}

describe('If and Loop over named values (the step graph’s streams)', () => {
  it('keeps every value under its name through either branch and any number of trips', async () => {
    const { session } = await createSession(namedGraph(), cpu);
    const run = async (flag: boolean, trips: number) => {
      const out = await session.run({
        a: new ort.Tensor('float32', Float32Array.of(1, 2), [2]),
        b: new ort.Tensor('float32', Float32Array.of(10, 20), [2]),
        flag: new ort.Tensor('bool', Uint8Array.of(flag ? 1 : 0), [1]),
        n: new ort.Tensor('float32', new Float32Array(trips), [trips]),
      });
      return [Array.from(out.out_a!.data as Float32Array), Array.from(out.out_b!.data as Float32Array)];
    };
    expect(await run(false, 0)).toEqual([
      [1, 2],
      [10, 20],
    ]);
    expect(await run(true, 0)).toEqual([
      [10, 20],
      [1, 2],
    ]);
    // Two trips from {a: 1,2; b: 10,20}: a = 11,22 then 31,62; b = 20,40 then 40,80.
    expect(await run(false, 2)).toEqual([
      [31, 62],
      [40, 80],
    ]);
    await session.release();
  });

  it('refuses a branch that leaves a name out, naming it', () => {
    const g = new Graph('bad', { computeType: 'float32' });
    const a = g.input('a', 'float32', [2]);
    const flag = g.input('flag', 'bool', [1]);
    expect(() =>
      ifThen(
        flag,
        () => ({ a, b: a }),
        () => ({ a }) as { a: typeof a; b: typeof a },
      ),
    ).toThrow(/a branch returned no "b"/);
  });
});

describe('the main pass’s latent source', () => {
  it('own steps: Euler in place, and a preview of x − σ·v from the latents the step started with', () => {
    const x = Float32Array.of(1, 2, 3, 4);
    const src = ownSteps(x);
    expect(src.stored).toBe(false);
    expect(src.enter(0)).toBe(x);
    const v = Float32Array.of(1, 1, -1, 0);
    const preview = src.advance(0, v, 1, 0.5);
    // x + (σ_next − σ)·v
    expect(Array.from(src.latents)).toEqual([0.5, 1.5, 3.5, 4]);
    expect(Array.from(preview())).toEqual([0, 1, 4, 4]);
    expect(Array.from(cleanEstimate(Float32Array.of(2), Float32Array.of(4), 0.25))).toEqual([1]);
  });

  it('a stored trajectory: entry i in, entry i + 1 out, as copies the run may write into', () => {
    const stored = [Float32Array.of(0, 0), Float32Array.of(1, 1), Float32Array.of(2, 2)];
    const src = storedTrajectory(stored);
    expect(src.stored).toBe(true);
    const x = src.enter(1);
    expect(Array.from(x)).toEqual([1, 1]);
    x[0] = 99;
    expect(stored[1]![0]).toBe(1);
    const preview = src.advance(1, Float32Array.of(5, 5), 1, 0);
    expect(Array.from(src.latents)).toEqual([2, 2]);
    expect(Array.from(preview())).toEqual([2, 2]);
    expect(src.latents).not.toBe(stored[2]);
  });
});
