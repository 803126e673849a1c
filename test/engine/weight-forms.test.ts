import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { buildTransformerGraph } from '../../src/engine/graphs/transformer.ts';
import { T5TextEncoder } from '../../src/engine/graphs/t5-encoder.ts';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import { AS_STORED, formsFor, PreparedCheckpoint } from '../../src/engine/pipeline/weight-forms.ts';
import { makeTinyModel } from '../../src/engine/tiny-model/make.ts';
import { writeWeightsForm, type TinyForm } from '../../src/engine/tiny-model/forms.ts';
import { f32ToF8e4m3fn, f8e4m3fnToF32 } from '../../src/engine/weights/dtype.ts';
import type { NamedWeights } from '../../src/engine/weights/named-weights.ts';
import { repoRoot } from '../support/fixtures.ts';
import { cpu, decodedInJs, maxAbsDiff, velocity, withTransformer } from '../support/weights.ts';

/*
 * The forms people download (make-tiny-model --weights …), each loaded as it is. Parity: the engine's graph on a
 * form equals the float32 graph over the same stored bytes decoded in JS (fp8 by its 256-entry table, GGUF blocks by
 * ggml's dequantize_row_* definitions in gguf/blocks.ts). Both sides multiply identical float32 weights, so the
 * bound is kernel noise, 2e-5 absolute on velocities of magnitude ≤ 6 (measured: 0 for GGUF and fp8).
 */
const root = mkdtempSync(path.join(tmpdir(), 'sw-forms-'));
const cacheDir = path.join(root, 'cache');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const dirs = new Map<TinyForm, string>();
beforeAll(() => {
  for (const form of ['bf16', 'fp8', 'gguf-q8_0', 'gguf-q4_0', 'int4'] as const) {
    const out = path.join(root, form);
    makeTinyModel({ out, preset: 'tiny', variant: 'dev', seed: 3 });
    writeWeightsForm(out, form);
    dirs.set(form, out);
  }
});

describe('weight forms written by make-tiny-model, loaded as they are', () => {
  for (const form of ['fp8', 'gguf-q8_0', 'gguf-q4_0'] as const) {
    it(`${form}: the graph equals the float32 graph over the stored bytes decoded in JS; the form stays small in the graph`, async () => {
      const raw = loadCheckpoint(dirs.get(form)!);
      const ck = new PreparedCheckpoint(raw, AS_STORED, cacheDir);
      const q = ck.transformerWeights().source('transformer_blocks.0.ff.net.0.proj.weight');
      if (form === 'fp8') expect(q.dtype).toBe('float8e4m3fn');
      else expect(q.nbits?.bits).toBe(form === 'gguf-q8_0' ? 8 : 4);
      // The T5 too: its linears stay in the file's form, and so does its GGUF token embedding (gathered, then widened).
      const t5 = ck.component('text_encoder_2').weights;
      const wi = t5.source('encoder.block.0.layer.1.DenseReluDense.wi_0.weight');
      if (form === 'fp8') expect(wi.dtype).toBe('float8e4m3fn');
      else {
        expect(wi.nbits?.bits).toBe(form === 'gguf-q8_0' ? 8 : 4);
        expect(t5.source('shared.weight').nbits?.bits).toBe(form === 'gguf-q8_0' ? 8 : 4);
      }
      // T5's output equals the float32 T5 over its stored bytes decoded in JS.
      const component = ck.component('text_encoder_2');
      const ids = [[37, 1712, 13, 3, 9, 1, ...new Array<number>(506).fill(0)]];
      const enc = (weights: NamedWeights) => new T5TextEncoder({ ...component, weights }, cpu);
      const [a, b] = [enc(component.weights), enc(decodedInJs(raw.component('text_encoder_2').weights))];
      const t5Got = (await a.encode(ids, 512)).lastHiddenState;
      const t5Ref = (await b.encode(ids, 512)).lastHiddenState;
      await Promise.all([a.release(), b.release()]);
      expect(maxAbsDiff(t5Got, t5Ref)).toBeLessThan(2e-5);
      const got = await velocity(ck);
      const ref = await velocity(withTransformer(raw, decodedInJs(raw.transformerWeights())));
      expect(maxAbsDiff(got, ref)).toBeLessThan(2e-5);
      // And the form is not the bf16 checkpoint it was made from.
      const bf16 = await velocity(loadCheckpoint(dirs.get('bf16')!));
      expect(maxAbsDiff(got, bf16)).toBeGreaterThan(1e-4);
    });
  }

  it("fp8: each DequantizeLinear waits for its block's input (so ORT widens one block at a time, not every weight at once)", () => {
    const ck = new PreparedCheckpoint(loadCheckpoint(dirs.get('fp8')!), AS_STORED, cacheDir);
    const model = buildTransformerGraph(ck.transformerConfig, ck.transformerWeights()).toModel();
    const inits = new Set(model.graph.initializer.map((i) => i.name));
    const byOutput = new Map(model.graph.node.map((n) => [n.output[0]!, n]));
    // The blocks' weights (the embedders before the first block are small and needed first anyway).
    const dq = model.graph.node.filter((n) => n.op_type === 'DequantizeLinear' && n.name!.includes('blocks.'));
    expect(dq.length).toBe(
      ck
        .transformerWeights()
        .names()
        .filter((n) => n.includes('blocks.') && ck.transformerWeights().info(n).dtype === 'float8e4m3fn').length,
    );
    for (const n of dq) {
      expect(inits.has(n.input[1]!), `${n.name}: scale is a constant`).toBe(false);
      // scale = stored scale · 1, the 1 computed from Size(block input).
      const mul = byOutput.get(n.input[1]!)!;
      expect(mul.op_type).toBe('Mul');
      // Up to the Size node (its input is the block's input, whose own history is the whole graph).
      const chain = (name: string): string[] => {
        const node = byOutput.get(name);
        if (!node) return [];
        return node.op_type === 'Size' ? ['Size'] : [node.op_type, ...node.input.flatMap(chain)];
      };
      expect(chain(mul.input[1]!)).toEqual(expect.arrayContaining(['Cast', 'Greater', 'Size']));
    }
  });

  it("int4: the folder's scenewright.json makes int4 the default, and its own prepared weights are used (nothing written to the cache)", async () => {
    const dir = dirs.get('int4')!;
    expect(readdirSync(path.join(dir, 'scenewright-prepared')).filter((f) => f.endsWith('.bin'))).toHaveLength(2);
    const own = path.join(root, 'int4-cache');
    const engine = Engine.open({ modelDir: dir, runtime: cpu, weightsCacheDir: own, memoryCheck: false });
    try {
      expect(engine.checkpoint.forms).toMatchObject({ transformer: 'int4', text_encoder_2: 'int4' });
      const src = engine.checkpoint.transformerWeights().source('proj_out.weight');
      expect(src.nbits?.bits).toBe(4);
      expect(src.nbits!.packed.external!.file.startsWith(path.join(dir, 'scenewright-prepared'))).toBe(true);
      expect(engine.version).toMatch(/\(transformer int4, text_encoder_2 int4\)$/);
      // WEIGHTS wins over the folder's default.
      const over = Engine.open({
        modelDir: dir,
        runtime: cpu,
        weightsCacheDir: own,
        memoryCheck: false,
        weights: { transformer: 'int8' },
      });
      expect(over.checkpoint.forms.transformer).toBe('int8');
      expect(existsSync(own)).toBe(false);
    } finally {
      await engine.close();
    }
  });

  it('a folder default that is not usable says which file and what is wrong', () => {
    const dir = path.join(root, 'bad-default');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'scenewright.json'), '{ weights: int4');
    expect(() => formsFor(dir, undefined)).toThrow(/scenewright\.json: not valid JSON .*fix it or delete it/);
    writeFileSync(path.join(dir, 'scenewright.json'), '{"weights": "int3"}');
    expect(() => formsFor(dir, undefined)).toThrow(/scenewright\.json: "int3" is not a weights form/);
    // WEIGHTS set: the file is not read.
    expect(formsFor(dir, { transformer: 'int8' }).forms.transformer).toBe('int8');
  });

  it('fp8 conversion rounds to nearest even and saturates, code for code', () => {
    const table = Array.from({ length: 127 }, (_, c) => f8e4m3fnToF32(c));
    for (let c = 0; c < 126; c++) {
      expect(f32ToF8e4m3fn(table[c]!)).toBe(c);
      expect(f32ToF8e4m3fn(-table[c]!)).toBe(0x80 | c);
      // A midpoint goes to the even code.
      const mid = Math.fround((table[c]! + table[c + 1]!) / 2);
      if (mid !== table[c] && mid !== table[c + 1]) expect(f32ToF8e4m3fn(mid)).toBe(c % 2 === 0 ? c : c + 1);
    }
    expect(f32ToF8e4m3fn(448)).toBe(0x7e);
    expect(f32ToF8e4m3fn(1e9)).toBe(0x7e);
    expect(f32ToF8e4m3fn(Number.NaN)).toBe(0x7f);
    expect(f8e4m3fnToF32(0x7f)).toBeNaN();
    expect(f8e4m3fnToF32(0x01)).toBe(2 ** -9);
  });

  it('make-tiny-model --weights: an unknown form is refused with the list', () => {
    const r = spawnSync(
      process.execPath,
      [
        path.join(repoRoot, 'bin', 'scenewright.js'),
        'make-tiny-model',
        '--out',
        path.join(root, 'x'),
        '--weights',
        'q3',
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--weights must be bf16, int8, int4, fp8, gguf-q4_0, gguf-q8_0 \(got "q3"\)/);
  });
});
