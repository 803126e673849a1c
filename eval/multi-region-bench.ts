/**
 * Several regions changed in one reply: one repaint over the union of the masks (what the bot did before,
 * with one hard-binding prompt "an orange cat and a blue dog" over the union's bounding box) against chained
 * repaints (one pass per region with its own mask and prompt, each on the previous result). Prints, measured
 * in one run: time of each (best of --runs, after a warm-up), their ratio, and the share of pixels outside all
 * dilated masks that equal the parent's, plus the process's peak RSS.
 *
 *   node --import tsx eval/multi-region-bench.ts --model ../shared/fixtures/tiny-flux-schnell --size 256 --steps 4
 *   node --import tsx eval/multi-region-bench.ts --model .tmp/bench-model-schnell --size 512 --steps 4   (make-tiny-model --preset bench)
 *   --only union|chained   time one method alone in this process (its own peak RSS)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chainedRepaintJob } from '../src/engine/painter.ts';
import { Engine } from '../src/engine/pipeline/engine.ts';
import { readRgb8, repaintPixels } from '../src/engine/pipeline/image.ts';
import { generateJob, repaintJob, type JobOutput } from '../src/engine/pipeline/jobs.ts';
import { TRAJECTORY_ARTIFACT } from '../src/engine/pipeline/trajectory.ts';
import { editOffline } from '../src/planner/offline-edit.ts';
import { planOffline } from '../src/planner/offline.ts';
import { applyEdit } from '../src/scene/edit.ts';
import type { Edit } from '../src/scene/schema.ts';
import { editToRepaintParams, editToRepaintPasses, sceneToRagParams } from '../src/paint/scene-to-rag.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: '../shared/fixtures/tiny-flux-schnell' },
    size: { type: 'string', default: '256' },
    steps: { type: 'string', default: '4' },
    runs: { type: 'string', default: '2' },
    threads: { type: 'string', default: '0' },
    only: { type: 'string' },
  },
});
const size = Number(values.size),
  steps = Number(values.steps),
  runs = Number(values.runs);

const engine = Engine.open({
  modelDir: values.model!,
  runtime: { executionProvider: 'cpu', threads: Number(values.threads) },
});
const scene = planOffline('a black cat on the left and a white dog on the right', { width: size, height: size }).scene;
const parent = sceneToRagParams(scene, { model: engine.modelId, seed: 7, steps });
const dir = mkdtempSync(path.join(tmpdir(), 'sw-multi-'));
try {
  const gen = await generateJob(engine, parent);
  const image = path.join(dir, 'image.png'),
    trajectory = path.join(dir, TRAJECTORY_ARTIFACT);
  writeFileSync(image, gen.image);
  writeFileSync(trajectory, gen.artifacts[TRAJECTORY_ARTIFACT]!);
  const instruction = 'make the cat orange and the dog blue';
  const applied = applyEdit(scene, editOffline(scene, instruction).edit as Extract<Edit, { kind: 'change' }>);
  if (applied.repaint.length !== 2) throw new Error(`expected two changed regions, got ${applied.repaint.length}`);

  const union = async () => {
    const plan = await editToRepaintParams(parent, applied, { model: engine.modelId });
    if (plan.mode !== 'repaint') throw new Error(plan.mode);
    return repaintJob(engine, plan.params, { params: parent, image, trajectory, kind: 'generate' });
  };
  const chained = () =>
    chainedRepaintJob(engine, {
      kind: 'repaint',
      generationId: 'bench',
      params: {
        scene: applied.scene,
        seed: 7,
        steps,
        model: engine.modelId,
        repaint: { instruction, regions: applied.repaint, mode: 'chained' },
      },
      parent: {
        generationId: 'parent',
        params: { scene, seed: 7, steps, model: engine.modelId, rag: parent },
        artifacts: { 'image.png': image, [TRAJECTORY_ARTIFACT]: trajectory },
      },
    });

  // The pixels no mask touches: outside the union of every pass's dilated mask.
  const passes = await editToRepaintPasses(parent, scene, applied, { model: engine.modelId });
  const masks = await Promise.all(passes.map((p) => repaintPixels(p.mask, size, size)));
  const parentRgb = await readRgb8(image);
  const unchanged = async (out: JobOutput) => {
    const rgb = await readRgb8(out.image);
    let outside = 0,
      same = 0;
    for (let p = 0; p < size * size; p++) {
      if (masks.some((m) => m[p])) continue;
      outside++;
      if (
        rgb.data[p * 3] === parentRgb.data[p * 3] &&
        rgb.data[p * 3 + 1] === parentRgb.data[p * 3 + 1] &&
        rgb.data[p * 3 + 2] === parentRgb.data[p * 3 + 2]
      )
        same++;
    }
    return { outside, same };
  };

  const methods = [
    ['union', union],
    ['chained', chained],
  ] as const;
  const chosen = methods.filter(([name]) => !values.only || values.only === name);
  for (const [, run] of chosen) await run(); // warm-up: sessions for each step signature
  const best = new Map<string, number>();
  const equal = new Map<string, { outside: number; same: number }>();
  for (let r = 0; r < runs; r++) {
    for (const [name, run] of chosen) {
      const t0 = performance.now();
      const out = await run();
      const ms = performance.now() - t0;
      best.set(name, Math.min(best.get(name) ?? Infinity, ms));
      equal.set(name, await unchanged(out));
    }
  }
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(
    `${path.basename(values.model!)}, ${size}×${size}, ${steps} steps, "${instruction}" (2 regions), best of ${runs}, peak RSS ${rss.toFixed(0)} MiB`,
  );
  for (const [name] of chosen) {
    const e = equal.get(name)!;
    const hb =
      name === 'union'
        ? '"an orange cat and a blue dog" over both boxes'
        : passes.map((p) => `"${p.params.Repainting_HB_prompt}"`).join(', then ');
    console.log(
      `  ${name.padEnd(8)} ${(best.get(name)! / 1000).toFixed(2)} s   outside all masks: ${e.same}/${e.outside} pixels equal the parent's   hard binding: ${hb}`,
    );
  }
  if (best.has('union') && best.has('chained'))
    console.log(`  chained ÷ union: ${(best.get('chained')! / best.get('union')!).toFixed(2)}×`);
} finally {
  rmSync(dir, { recursive: true, force: true });
  await engine.close();
}
