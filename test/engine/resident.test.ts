import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/config/errors.ts';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import { generateJob, repaintJob, type JobOutput } from '../../src/engine/pipeline/jobs.ts';
import { loadGeneration, saveGeneration } from '../../src/cli/generation-files.ts';
import { padCells, StepRunner } from '../../src/engine/step/step-runner.ts';
import { benchFeeds } from '../../bench/rag-workload.ts';
import { rectsToMaskPng } from '../../src/rag/mask.ts';
import type { RagParams } from '../../src/rag/params.ts';
import { fixture } from '../support/fixtures.ts';

/*
 * One resident model: after warm-up, every kind of job — any number of boxes and cells, δ = 0, repaint with and
 * without Repainting_single, the pre-pass, repaints of repaints, plain prompts, other sizes — runs on the one step
 * session created at warm-up. Nothing is built or loaded per job.
 */
const engine = Engine.open({ modelDir: fixture('tiny-flux-dev'), runtime: { executionProvider: 'cpu', threads: 2 } });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-resident-'));
afterAll(async () => {
  await engine.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** n boxes side by side (columns), with an SR grid of `cells` columns. */
function layout(n: number, cells: number, o: { width?: number; height?: number; delta?: number } = {}): RagParams {
  const width = o.width ?? 128;
  const height = o.height ?? 128;
  const things = Array.from({ length: n }, (_, k) => `object number ${k + 1}`);
  return {
    prompt: `a row of ${n} things`,
    HB_prompt_list: things,
    HB_m_offset_list: things.map((_, k) => k / n),
    HB_n_offset_list: things.map(() => 0.25),
    HB_m_scale_list: things.map(() => 1 / n),
    HB_n_scale_list: things.map(() => 0.5),
    HB_replace: 1,
    SR_hw_split_ratio: Array.from({ length: cells }, () => (1 / cells).toFixed(4)).join(','),
    SR_delta: o.delta ?? 0.5,
    SR_prompt: Array.from({ length: cells }, (_, j) => `part ${j + 1}`).join(' BREAK '),
    seed: 3 + n,
    height,
    width,
    num_inference_steps: 2,
    guidance_scale: 3.5,
  };
}

/** Saves a job as the CLI does and gives back its image and trajectory paths. */
function store(name: string, out: JobOutput, rag: RagParams): { image: string; trajectory: string } {
  const dir = path.join(tmp, name);
  saveGeneration(dir, { out, rag, model: engine.modelId, version: engine.version });
  const { image, trajectory } = loadGeneration(dir);
  return { image, trajectory };
}

describe('one resident transformer serves every layout', () => {
  beforeAll(async () => {
    const loaded = await engine.warmUp();
    expect(loaded.map((s) => s.component)).toEqual(['text encoders', 'transformer', 'vae', 'preview']);
  });

  it('after warm-up no job creates a step session: 1–8 boxes, 2–8 cells, δ = 0, plain, other sizes and aspects', async () => {
    const [session] = engine.steps.sessions;
    expect(engine.steps.sessions).toHaveLength(1);
    const created = session!.createMs;
    const jobs: RagParams[] = [
      layout(1, 2),
      layout(2, 2),
      layout(3, 3),
      layout(5, 4),
      layout(8, 8),
      layout(2, 2, { delta: 0 }),
      { ...layout(1, 2, { delta: 0 }), HB_replace: -1 },
      layout(3, 4, { width: 192, height: 128 }),
      layout(2, 2, { width: 96, height: 160 }),
    ];
    for (const p of jobs) {
      const out = await generateJob(engine, p);
      expect(out.rgb.width).toBe(p.width);
    }
    expect(engine.steps.sessions).toHaveLength(1);
    expect(engine.steps.sessions[0]).toBe(session);
    expect(session!.createMs).toBe(created);
    expect(Object.keys(session!.runsBy).sort()).toEqual(
      [
        'k0-s0',
        'k0-s2',
        'k0-s3',
        'k0-s4',
        'k0-s8',
        'k1-s2',
        'k2-s0',
        'k2-s2',
        'k3-s3',
        'k3-s4',
        'k5-s4',
        'k8-s8',
      ].sort(),
    );
  });

  it('repaints (with and without Repainting_single, with the pre-pass) and a repaint of a repaint reuse the same session', async () => {
    const [session] = engine.steps.sessions;
    const first = layout(2, 2);
    const parent = await generateJob(engine, first);
    const repaint = async (single: 0 | 1, seed: number): Promise<RagParams> => ({
      ...first,
      Repainting_mask: await rectsToMaskPng([{ x: 0, y: 32, w: 64, h: 64 }], 128, 128),
      Repainting_prompt: 'a row of 2 things, the first one blue',
      Repainting_SR_prompt: 'part one, blue BREAK part 2',
      Repainting_HB_prompt: 'a blue object',
      Repainting_HB_replace: 1,
      Repainting_seed: seed,
      Repainting_single: single,
    });
    const second = await repaintJob(engine, await repaint(0, 7), { params: first, ...store('parent', parent, first) });
    const alt = await repaintJob(engine, await repaint(1, 8), { params: first, ...store('parent', parent, first) });
    expect(alt.mode).toBe('repaint-exact');
    const third = await repaintJob(
      engine,
      { ...(await repaint(0, 9)), Repainting_prompt: 'a row of 2 things, the first one red' },
      { params: await repaint(0, 7), ...store('second', second, await repaint(0, 7)), kind: 'repaint' },
    );
    expect(third.mode).toBe('repaint-stored');
    expect(engine.steps.sessions).toEqual([session]);
    expect(Object.keys(session!.runsBy)).toEqual(
      expect.arrayContaining(['k2-s2-pp', 'k0-s2-rp0', 'k0-s2-rp1', 'k0-s0']),
    );
  });

  it('a layout beyond what the step graph takes is refused before any step runs', async () => {
    const runs = engine.steps.sessions[0]!.runs;
    const tooMany = layout(18, 2, { width: 288 });
    await expect(generateJob(engine, tooMany)).rejects.toThrow(UserError);
    await expect(generateJob(engine, tooMany)).rejects.toThrow(/18 regional streams .* at most 17/);
    expect(engine.steps.sessions[0]!.runs).toBe(runs);
  });
});

describe('regional streams without a Loop (the form for providers that lack it)', () => {
  it('unrolled into If nodes gives the same velocities as the Loop, and refuses more streams than it unrolled', async () => {
    const ck = engine.checkpoint;
    const cpu = { executionProvider: 'cpu' as const, threads: 2 };
    const loop = StepRunner.forCheckpoint(ck, cpu);
    const unrolled = StepRunner.forCheckpoint(ck, cpu, { regionalLoop: 'unrolled', maxRegions: 3 });
    const { feeds } = benchFeeds(
      ck,
      { boxes: 2, cells: 2, repaint: false, repaintSingle: false, prepass: true },
      { width: 128, height: 128 },
    );
    const [a, b] = [await loop.run(feeds), await unrolled.run(feeds)];
    expect(b.velocity).toEqual(a.velocity);
    expect(b.boxes).toEqual(a.boxes);
    expect(b.prepass).toEqual(a.prepass);
    expect(unrolled.limits.regions).toBe(3);
    expect(() =>
      unrolled.checkLimits({ boxes: 3, cells: 0, repaint: true, repaintSingle: false, prepass: true }, 64),
    ).toThrow(/4 regional streams .* at most 3/);
    await loop.release();
    await unrolled.release();
  });
});

describe('a model too big for the device', () => {
  it('fails at warm-up, before loading, naming the need, the free bytes and the options', async () => {
    const small = Engine.open({
      modelDir: fixture('tiny-flux-dev'),
      runtime: { executionProvider: 'cpu', threads: 1 },
      memoryCheck: 1e6,
    });
    const err = await small.warmUp().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(
      /needs about \d+\.\d GiB \(transformer in float32 .*, T5 in float32 .*\) but the memory budget has 0\.0 GiB free\. Options: smaller weights: WEIGHTS=int8/,
    );
    expect(small.steps.sessions).toHaveLength(0);
    await small.close();
  });
});

describe('soft-refinement crops padded to one table', () => {
  it('re-points every composite token to its cell row, padded rows read token 0', () => {
    // Cell 0 queries tokens 0, 1, 4; cell 1 queries 2, 3 (the concatenated lists have 5 rows).
    const sources = [BigInt64Array.of(0n, 1n, 4n), BigInt64Array.of(2n, 3n)];
    const place = BigInt64Array.of(0n, 1n, 3n, 4n, 2n);
    const p = padCells(sources, place);
    expect(p.width).toBe(3);
    expect(Array.from(p.sources, Number)).toEqual([0, 1, 4, 2, 3, 0]);
    // Concatenated rows 0,1,2 are cell 0's rows 0,1,2 (table rows 0,1,2); rows 3,4 are cell 1's (table rows 3,4).
    expect(Array.from(p.place, Number)).toEqual([0, 1, 3, 4, 2]);
  });
});
