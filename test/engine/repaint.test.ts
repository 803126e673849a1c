import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine/pipeline/engine.ts';
import { readRgb8, repaintPixels, type Rgb8 } from '../../src/engine/pipeline/image.ts';
import { generateJob, repaintJob, type JobOutput } from '../../src/engine/pipeline/jobs.ts';
import { TableConditioning } from '../../src/engine/pipeline/conditioning.ts';
import {
  checkReplay,
  encodeTrajectory,
  readTrajectory,
  replayPlan,
  TRAJECTORY_ARTIFACT,
} from '../../src/engine/pipeline/trajectory.ts';
import { rectsToMaskPng } from '../../src/rag/mask.ts';
import type { RagParams } from '../../src/rag/params.ts';
import { fixture } from '../support/fixtures.ts';

const cpu = { executionProvider: 'cpu' as const, threads: 2 };
const engine = Engine.open({ modelDir: fixture('tiny-flux-dev'), runtime: cpu });
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-repaint-'));
afterAll(async () => {
  await engine.close();
  rmSync(tmp, { recursive: true, force: true });
});

const base: RagParams = {
  prompt: 'a red apple and a glass of lemonade on a wooden table',
  HB_prompt_list: ['a red apple', 'a glass of lemonade'],
  HB_m_offset_list: [0, 0.5],
  HB_n_offset_list: [0, 0.25],
  HB_m_scale_list: [0.5, 0.5],
  HB_n_scale_list: [1, 0.5],
  HB_replace: 2,
  SR_hw_split_ratio: '0.5,0.5',
  SR_delta: 0.5,
  SR_prompt: 'a shiny red apple on the left BREAK a tall glass of lemonade on the right',
  seed: 5,
  height: 128,
  width: 128,
  num_inference_steps: 4,
  guidance_scale: 3.5,
};

async function repaintFields(rect: { x: number; y: number; w: number; h: number }, what: string, seed: number) {
  return {
    Repainting_mask: await rectsToMaskPng([rect], 128, 128),
    Repainting_prompt: `a red apple and ${what} on a wooden table`,
    Repainting_SR_prompt: `a shiny red apple on the left BREAK ${what} on the right`,
    Repainting_HB_prompt: what,
    Repainting_HB_replace: 1,
    Repainting_seed: seed,
    Repainting_single: 0 as const,
  };
}

/** Saves a job's image and trajectory as the worker host would, returning their paths. */
function store(name: string, out: JobOutput): { image: string; trajectory: string } {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const image = path.join(dir, 'image.png');
  const trajectory = path.join(dir, TRAJECTORY_ARTIFACT);
  writeFileSync(image, out.image);
  writeFileSync(trajectory, out.artifacts[TRAJECTORY_ARTIFACT]!);
  return { image, trajectory };
}

/** Pixels outside the repaint area: the largest channel difference (0–255) and how many pixels differ inside. */
function compare(a: Rgb8, b: Rgb8, area: Uint8Array): { outside: number; insideChanged: number } {
  let outside = 0;
  let insideChanged = 0;
  for (let p = 0; p < area.length; p++) {
    let d = 0;
    for (let c = 0; c < 3; c++) d = Math.max(d, Math.abs(a.data[p * 3 + c]! - b.data[p * 3 + c]!));
    if (area[p]) insideChanged += d > 0 ? 1 : 0;
    else outside = Math.max(outside, d);
  }
  return { outside, insideChanged };
}

describe('repaint jobs and edits of edits', () => {
  let parent: JobOutput;
  let parentFiles: { image: string; trajectory: string };
  let first: JobOutput;
  let firstParams: RagParams;
  let firstFiles: { image: string; trajectory: string };

  it('a first generation stores its trajectory (float16, steps + 1 latents) and its conditioning', async () => {
    parent = await generateJob(engine, base);
    parentFiles = store('parent', parent);
    const t = readTrajectory(parentFiles.trajectory);
    expect([t.width, t.height, t.steps, t.latents.length, t.kind]).toEqual([128, 128, 4, 5, 'generate']);
    expect(t.conditioning).toMatchObject({
      prompt: base.prompt,
      srDelta: 0.5,
      srSegments: base.SR_prompt.split('BREAK'),
    });
    // float16 storage: relative error ≤ 2^-11 of each value.
    parent.result.trajectory.forEach((x, i) => {
      for (let j = 0; j < x.length; j++)
        expect(Math.abs(t.latents[i]![j]! - x[j]!)).toBeLessThanOrEqual(Math.abs(x[j]!) * 2 ** -11 + 1e-7);
    });
    expect(t.latents[4]!.length).toBe(64 * 64);
  });

  it('repainting a first generation re-runs it exactly (same latents bit for bit) and keeps every pixel outside the dilated mask', async () => {
    firstParams = { ...base, ...(await repaintFields({ x: 80, y: 48, w: 32, h: 32 }, 'a blue cup', 100)) };
    first = await repaintJob(engine, firstParams, { params: base, ...parentFiles });
    expect(first.mode).toBe('repaint-exact');
    // The main pass runs with the shapes of a plain generation (the repaint pass is not batched with it), so it
    // re-runs the parent bit for bit.
    expect(first.result.latents).toEqual(parent.result.latents);
    const area = await repaintPixels(firstParams.Repainting_mask!, 128, 128);
    const c = compare(first.rgb, await readRgb8(parentFiles.image), area);
    expect(c.outside).toBe(0);
    expect(c.insideChanged).toBeGreaterThan(100);
    // The dilated area is the black box grown by 10 px (cross-shaped), inside the image.
    expect(area.reduce((a, b) => a + b, 0)).toBeGreaterThan(32 * 32);
    firstFiles = store('first', first);
    expect(readTrajectory(firstFiles.trajectory)).toMatchObject({
      kind: 'repaint',
      conditioning: { prompt: 'a red apple and a blue cup on a wooden table' },
    });
  });

  it('repainting a repaint replays its stored trajectory: one run per step, at most two passes, no lineage', async () => {
    const second: RagParams = {
      ...firstParams,
      ...(await repaintFields({ x: 0, y: 0, w: 48, h: 48 }, 'a green pear', 7)),
    };
    const before = { ...engine.steps.sessions[0]?.runsBy };
    const out = await repaintJob(engine, second, { params: firstParams, ...firstFiles });
    expect(out.mode).toBe('repaint-stored');
    expect(engine.steps.sessions).toHaveLength(1);
    const used = Object.entries(engine.steps.sessions[0]!.runsBy)
      .map(([k, n]) => [k, n - (before[k] ?? 0)] as const)
      .filter(([, n]) => n);
    expect(used.reduce((n, [, r]) => n + r, 0)).toBe(4);
    // Before R only the pre-pass (as a plain stream); from R on the parent pass + the repaint pass (+ SR).
    expect(used.map(([k]) => k).sort()).toEqual(['k0-s0', 'k0-s2-rp0']);
    const area = await repaintPixels(second.Repainting_mask!, 128, 128);
    const c = compare(out.rgb, first.rgb, area);
    expect(c.outside).toBe(0);
    expect(c.insideChanged).toBeGreaterThan(100);
    // Its own trajectory follows the parent's outside the mask (float16-rounded) and is stored for the next edit.
    const t = readTrajectory(store('second', out).trajectory);
    expect(t.kind).toBe('repaint');
    expect(t.conditioning.prompt).toBe('a red apple and a green pear on a wooden table');

    // A third edit costs the same: still one run per step.
    const third: RagParams = { ...second, ...(await repaintFields({ x: 64, y: 96, w: 32, h: 32 }, 'a plum', 9)) };
    const b2 = engine.steps.sessions.reduce((n, s) => n + s.runs, 0);
    const out3 = await repaintJob(engine, third, { params: second, ...store('second', out) });
    expect(engine.steps.sessions.reduce((n, s) => n + s.runs, 0) - b2).toBe(4);
    expect(compare(out3.rgb, out.rgb, await repaintPixels(third.Repainting_mask!, 128, 128)).outside).toBe(0);
  });

  it('stored mode vs exact mode on the same first-generation parent (no hard binding): only float16 rounding apart', async () => {
    const params: RagParams = {
      ...base,
      HB_replace: -1,
      ...(await repaintFields({ x: 80, y: 48, w: 32, h: 32 }, 'a blue cup', 100)),
    };
    const plain = await generateJob(engine, { ...base, HB_replace: -1 });
    const exact = await repaintJob(engine, params, { params: { ...base, HB_replace: -1 } });
    const files = store('plain', plain);
    const stored = await repaintJob(engine, params, { params: { ...base, HB_replace: -1 }, ...files, kind: 'repaint' });
    expect(stored.mode).toBe('repaint-stored');
    let m = 0;
    const a = exact.result.repaintLatents!;
    const b = stored.result.repaintLatents!;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
    // float16 latents (≈ 5e-4 relative) through a 4-step chain; the repaint itself moves latents by O(1).
    expect(m).toBeLessThan(2e-2);
    expect(m).toBeGreaterThan(0);
  });

  it('a repaint parent without its trajectory is refused with what to do', async () => {
    const second: RagParams = { ...firstParams, ...(await repaintFields({ x: 0, y: 0, w: 48, h: 48 }, 'a pear', 7)) };
    await expect(repaintJob(engine, second, { params: firstParams, image: firstFiles.image })).rejects.toThrow(
      /trajectory\.safetensors is missing: repaint its original instead/,
    );
    await expect(repaintJob(engine, base, { params: base })).rejects.toThrow(/needs the Repainting_\* parameters/);
  });

  it('trajectory files: round trip and clear errors', () => {
    const lat = [new Float32Array(64 * 64).fill(1.5), new Float32Array(64 * 64).fill(-2)];
    const bytes = encodeTrajectory({
      width: 128,
      height: 128,
      steps: 1,
      latents: lat,
      conditioning: { prompt: 'p', srDelta: 0, guidance: 3.5, textLength: 512 },
      kind: 'generate',
      model: 'flux.1-dev',
    });
    const file = path.join(tmp, 't.safetensors');
    writeFileSync(file, bytes);
    const t = readTrajectory(file);
    expect(t.latents[1]![0]).toBe(-2);
    expect(() =>
      encodeTrajectory({
        width: 128,
        height: 128,
        steps: 2,
        latents: lat,
        conditioning: t.conditioning,
        kind: 'generate',
        model: '',
      }),
    ).toThrow(/expected 3 latents/);
    expect(() => readTrajectory(path.join(tmp, 'none.safetensors'))).toThrow(/missing/);
  });

  it('a replay refuses a parent painted with another split ratio, δ, guidance, text length or model, naming each', async () => {
    const second: RagParams = {
      ...firstParams,
      ...(await repaintFields({ x: 0, y: 0, w: 48, h: 48 }, 'a green pear', 7)),
    };
    const files = { params: firstParams, ...firstFiles };
    await expect(repaintJob(engine, { ...second, SR_delta: 0.75 }, files)).rejects.toThrow(
      /was painted with SR δ 0\.5 \(this repaint: 0\.75\)\. A repaint of a repaint replays the parent as it was painted/,
    );
    await expect(repaintJob(engine, { ...second, SR_hw_split_ratio: '1,1' }, files)).rejects.toThrow(
      /SR split ratio "0\.5,0\.5" \(this repaint: "1,1"\)/,
    );
    await expect(repaintJob(engine, { ...second, guidance_scale: 5 }, files)).rejects.toThrow(
      /guidance 3\.5 \(this repaint: 5\)/,
    );
    await expect(repaintJob(engine, { ...second, max_sequence_length: 256 }, files)).rejects.toThrow(
      /T5 text length 512 \(this repaint: 256\)/,
    );
    const t = readTrajectory(firstFiles.trajectory);
    const plan = await engine.plan(second);
    expect(() => checkReplay(t, 'p.safetensors', { ...plan, model: 'flux.1-schnell' })).toThrow(
      /model flux\.1-dev \(this engine: flux\.1-schnell\)/,
    );
    // Several differences are all named; whitespace in a ratio is not one.
    expect(() => checkReplay(t, 'p.safetensors', { ...plan, steps: 8, guidance: 1, model: engine.modelId })).toThrow(
      /painted with 4 steps \(this repaint: 8\), guidance 3\.5 \(this repaint: 1\)\./,
    );
    expect(() =>
      checkReplay(t, 'p.safetensors', { ...plan, sr: { ratio: '0.5, 0.5', delta: 0.5 }, model: engine.modelId }),
    ).not.toThrow();
  });

  it('repaint and repaint-HB prompts take the global prompt_2 as their T5 text, as upstream encodes them', async () => {
    const params: RagParams = { ...firstParams, prompt_2: 'a still life, oil on canvas' };
    const plan = await engine.plan(params);
    expect(plan.repaint!.prompt2).toBe('a still life, oil on canvas');
    // Conditioning that has T5 embeddings only for what upstream sends to T5: prompt_2 (global, repaint and
    // repaint pre-pass), the HB prompts and the SR segments. Asking T5 for Repainting_prompt or Repainting_HB_prompt
    // would fail ("no T5 embedding given for …").
    const enc = engine.conditioning();
    const t5Texts = [
      params.prompt_2!,
      ...params.HB_prompt_list,
      ...params.SR_prompt.split('BREAK'),
      ...params.Repainting_SR_prompt!.split('BREAK'),
    ];
    const clipTexts = [
      params.prompt,
      ...params.HB_prompt_list,
      params.Repainting_prompt!,
      params.Repainting_HB_prompt!,
    ];
    const table = new TableConditioning(
      enc.textLength,
      new Map(await Promise.all(t5Texts.map(async (t) => [t, await enc.t5(t)] as const))),
      new Map(await Promise.all(clipTexts.map(async (t) => [t, await enc.clip(t)] as const))),
    );
    const withTable = await engine.run(plan, { conditioning: table });
    const withEncoders = await engine.run(plan);
    expect(withTable.repaintLatents).toEqual(withEncoders.repaintLatents);
    // And prompt_2 changes the repaint (it is used, not only allowed).
    expect(withEncoders.repaintLatents).not.toEqual((await engine.run(await engine.plan(firstParams))).repaintLatents);
  });

  it('a repaint of a repaint of an HB generation (its parent was itself forced): measured difference from exact mode', async () => {
    // Exact mode would replay the lineage, so the parent pass of this repaint would give the first repaint's own
    // velocities bit for bit. Stored mode recomputes that pass from the float16 trajectory with the parent's prompts
    // only, unforced by the grandparent outside the first mask and without its hard-binding rows. Measured here:
    // the parent pass velocity's relative RMS error against the first repaint's recorded velocities, next to the
    // same error for an unforced parent (float16 rounding only).
    const rel = (a: Float32Array, b: Float32Array, where?: (token: number) => boolean) => {
      let num = 0;
      let den = 0;
      for (let i = 0; i < a.length; i++) {
        if (where && !where(Math.floor(i / 64))) continue;
        num += (a[i]! - b[i]!) ** 2;
        den += b[i]! ** 2;
      }
      return Math.sqrt(num / den);
    };
    const firstPlan = await engine.plan(firstParams);
    const firstRun = await engine.run(firstPlan, { record: true });
    const t1 = readTrajectory(firstFiles.trajectory);
    const second: RagParams = {
      ...firstParams,
      ...(await repaintFields({ x: 0, y: 0, w: 48, h: 48 }, 'a green pear', 7)),
    };
    const stored = await engine.run(replayPlan(await engine.plan(second), t1, 'first', engine.modelId), {
      stored: t1.latents,
      record: true,
    });

    const plainParams: RagParams = { ...base, HB_replace: -1 };
    const plainRun = await engine.run(await engine.plan(plainParams), { record: true });
    const tPlain = readTrajectory(store('plain-parent', await generateJob(engine, plainParams)).trajectory);
    const plainSecond: RagParams = {
      ...plainParams,
      ...(await repaintFields({ x: 0, y: 0, w: 48, h: 48 }, 'a green pear', 7)),
    };
    const storedPlain = await engine.run(replayPlan(await engine.plan(plainSecond), tPlain, 'plain', engine.modelId), {
      stored: tPlain.latents,
      record: true,
    });

    const inside1 = firstPlan.repaint!.mask.tokens;
    const forced: number[] = [];
    const forcedOutside: number[] = [];
    const unforced: number[] = [];
    for (let i = 1; i < 4; i++) {
      forced.push(rel(stored.record!.velocity[i]!, firstRun.record!.repaintVelocity[i]!));
      forcedOutside.push(rel(stored.record!.velocity[i]!, firstRun.record!.repaintVelocity[i]!, (t) => !inside1[t]));
      unforced.push(rel(storedPlain.record!.velocity[i]!, plainRun.record!.velocity[i]!));
    }
    const fmt = (v: number[]) => v.map((x) => x.toExponential(2)).join(', ');
    console.info(
      `stored vs exact parent-pass velocity, relative RMS per step ≥ R: forced parent ${fmt(forced)} (outside its mask ${fmt(forcedOutside)}); unforced parent ${fmt(unforced)}`,
    );
    for (let k = 0; k < 3; k++) {
      // float16 latents alone: ≈ 1e-3 of the velocity.
      expect(unforced[k]!).toBeLessThan(5e-3);
      // The forcing the stored replay cannot reproduce is a larger, measurable but bounded error.
      expect(forced[k]!).toBeGreaterThan(unforced[k]!);
      expect(forced[k]!).toBeLessThan(0.5);
    }
  });
});
