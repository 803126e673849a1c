import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../config/errors.ts';
import type { ParentGeneration } from '../../engine/pipeline/jobs.ts';
import type { RagParams } from '../../rag/params.ts';
import type { Edit, Scene } from '../../scene/schema.ts';
import type { ModelId } from '../../engine/model-manifest.ts';
import { intOption, parseCommandArgs, type CliCommand } from '../command.ts';
import { GENERATE_FLAGS, jobTimer, loadWeights, noiseFile, openEngine, outFormat, writeOutputs } from './generate.ts';

const usage =
  'scenewright repaint --model <dir> --from <generation id | generation dir | params.json> (--edit "<instruction>" | --scene <edited scene.json>)\n' +
  '       --out <image.png|.webp> [--seed N (the repaint noise)] [--noise <file>] [--latents-out <file>] [--save-generation <dir>]\n' +
  '       --from: the id of a generation the bot painted (looked up in DATA_DIR), a folder written by\n' +
  '       `generate/repaint --save-generation` (repaints of repaints replay its stored\n' +
  '       trajectory), or a JSON file: stored generation parameters {scene, seed, steps, model[, rag]} or official RAG\n' +
  '       parameters. Official parameters that already hold the Repainting_* fields are run as they are.\n' +
  '       --edit uses the offline editor ("change the left cat to a dog"); --scene gives the edited layout (same ids).\n' +
  "       Defaults: --seed derived from the parent's seed and the edit (the same edit repaints the same way); size,\n" +
  "       steps and guidance are the parent's; --model is MODEL_DIR; --out's extension picks PNG, WebP or JPEG.";

interface Source {
  /** The parent's RAG parameters (its last pass). */
  rag: RagParams;
  /** The model the parent was painted with, when the source says. */
  model?: string;
  scene?: Scene;
  parent: Omit<ParentGeneration, 'params'>;
  baseDir: string;
}

/** A generation the bot painted, looked up by id in DATA_DIR's store (`scenewright` reads the same .env). */
async function storedSource(id: string, modelId: ModelId): Promise<Source> {
  const { loadConfig, readEnvironment } = await import('../../config/config.ts');
  const { dataDir } = loadConfig(readEnvironment());
  if (!existsSync(dataDir))
    throw new UserError(
      `--from ${id}: no such file, and DATA_DIR (${dataDir}) holds no store to look the generation up in`,
      2,
    );
  const { openStore } = await import('../../store/index.ts');
  const store = openStore(dataDir);
  try {
    const g = store.getGeneration(id);
    if (!g) throw new UserError(`--from ${id}: no such file, and no generation with that id in ${dataDir}`, 2);
    if (g.status !== 'done' || !g.artifacts['image.png'])
      throw new UserError(
        `generation ${id} has no finished image (status ${g.status}): only painted images can be repainted`,
        1,
      );
    const { lastPassOf } = await import('../../paint/stored.ts');
    const { TRAJECTORY_ARTIFACT } = await import('../../engine/pipeline/trajectory.ts');
    const rag = lastPassOf(g.params, modelId);
    const trajectory = g.artifacts[TRAJECTORY_ARTIFACT];
    return {
      rag,
      model: g.modelId ?? g.params.model,
      scene: g.params.scene,
      parent: {
        image: g.artifacts['image.png'],
        ...(trajectory ? { trajectory } : {}),
        kind: g.kind === 'repaint' ? 'repaint' : 'generate',
      },
      baseDir: path.dirname(g.artifacts['image.png']),
    };
  } finally {
    store.db.close();
  }
}

async function readSource(from: string, modelId: ModelId): Promise<Source> {
  const { ID_PATTERN } = await import('../../store/ids.ts');
  if (!existsSync(from) && ID_PATTERN.test(from)) return storedSource(from, modelId);
  if (!existsSync(from)) throw new UserError(`--from ${from} does not exist`, 2);
  if (statSync(from).isDirectory()) {
    const { isGenerationDir, loadGeneration } = await import('../generation-files.ts');
    if (!isGenerationDir(from))
      throw new UserError(
        `${from} is not a saved generation (no generation.json): write one with --save-generation`,
        2,
      );
    const g = loadGeneration(from);
    return {
      rag: g.rag,
      model: g.model,
      ...(g.scene ? { scene: g.scene } : {}),
      parent: { image: g.image, trajectory: g.trajectory, kind: g.kind },
      baseDir: from,
    };
  }
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(readFileSync(from, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${from} is not valid JSON: ${(e as Error).message}`, 2);
  }
  const baseDir = path.dirname(path.resolve(from));
  if (data.scene !== undefined) {
    const { GenerationParamsSchema } = await import('../../store/schema.ts');
    const parsed = GenerationParamsSchema.safeParse(data);
    if (!parsed.success)
      throw new UserError(
        `${from}: not generation parameters {scene, seed, steps, model}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        2,
      );
    const p = parsed.data;
    const { lastPassOf } = await import('../../paint/stored.ts');
    const rag = lastPassOf(p, modelId);
    return { rag, model: p.model, scene: p.scene, parent: { kind: p.repaint ? 'repaint' : 'generate' }, baseDir };
  }
  const { loadRagParamsFile } = await import('../../rag/params.ts');
  return { rag: loadRagParamsFile(from)[0]!, parent: {}, baseDir };
}

/** The Edit that turns `old` into `next` (regions matched by id). */
function sceneEdit(old: Scene, next: Scene): Extract<Edit, { kind: 'change' }> {
  const before = new Map(old.regions.map((r) => [r.id, r] as const));
  const sameBox = (a: Scene['regions'][number]['box'], b: typeof a) =>
    a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;
  const update = next.regions
    .filter((r) => before.has(r.id))
    .flatMap((r) => {
      const o = before.get(r.id)!;
      const u = {
        id: r.id,
        ...(r.label !== o.label ? { label: r.label } : {}),
        ...(r.prompt !== o.prompt ? { prompt: r.prompt } : {}),
        ...(sameBox(r.box, o.box) ? {} : { box: r.box }),
      };
      return Object.keys(u).length > 1 ? [u] : [];
    });
  const ids = new Set(next.regions.map((r) => r.id));
  return {
    kind: 'change',
    update,
    add: next.regions.filter((r) => !before.has(r.id)).map(({ label, prompt, box }) => ({ label, prompt, box })),
    remove: old.regions.filter((r) => !ids.has(r.id)).map((r) => r.id),
    ...(next.prompt !== old.prompt ? { prompt: next.prompt } : {}),
    ...(next.background !== old.background ? { background: next.background } : {}),
    ...(next.exclude.join('\u0000') !== old.exclude.join('\u0000') ? { exclude: next.exclude } : {}),
  };
}

export const command: CliCommand = {
  summary: 'repaint part of a generation (and repaints of repaints): only what the edit changes is painted again',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        ...GENERATE_FLAGS,
        from: { type: 'string' },
        edit: { type: 'string' },
        scene: { type: 'string' },
      },
      usage,
    );
    if (positionals.length) throw new UserError(`unexpected arguments: ${positionals.join(' ')}\n\nusage: ${usage}`, 2);
    if (!values.from) throw new UserError(`--from is required\n\nusage: ${usage}`, 2);
    if (!values.out) throw new UserError(`--out <image.png> is required\n\nusage: ${usage}`, 2);
    if (values.edit !== undefined && values.scene !== undefined)
      throw new UserError('give --edit or --scene, not both', 2);
    const repaintSeed = intOption(values.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    await outFormat(values.out);
    // The model's configs only: the source is read, the edit applied and the passes decided (or a question asked)
    // before any weights load.
    const engine = await openEngine(values.model);
    try {
      const src = await readSource(values.from, engine.modelId);
      if (src.model && src.model !== engine.modelId)
        throw new UserError(
          `${values.from} was painted with ${src.model}, and this model is ${engine.modelId}: a repaint re-runs the ` +
            `parent's painting, so it needs the same model. Give --model the ${src.model} folder, or paint the ` +
            'edited scene afresh with `generate --scene`.',
          1,
        );
      const { isRepaint } = await import('../../rag/params.ts');
      let passes: RagParams[];
      let scene: Scene | undefined;
      if (values.edit === undefined && values.scene === undefined) {
        if (!isRepaint(src.rag))
          throw new UserError(
            `what should change? Give --edit "<instruction>" or --scene <edited scene.json> (${values.from} holds no Repainting_* fields)`,
            2,
          );
        passes = [src.rag];
        src.parent.kind ??= 'generate';
      } else {
        if (!src.scene)
          throw new UserError(
            `${values.from} has no Scene to edit (official RAG parameters): add the Repainting_* fields to it instead`,
            2,
          );
        const { applyEdit } = await import('../../scene/edit.ts');
        let edit: Extract<Edit, { kind: 'change' }>;
        if (values.edit !== undefined) {
          const { editOffline } = await import('../../planner/offline-edit.ts');
          const r = editOffline(src.scene, values.edit);
          if (r.edit.kind === 'clarify') throw new UserError(`the edit is ambiguous: ${r.edit.question}`, 1);
          if (r.edit.kind === 'start_over')
            throw new UserError('that asks for a new picture, not a repaint: run `generate` with a new prompt', 1);
          edit = r.edit;
        } else {
          const { parseSceneJSON } = await import('../../scene/json.ts');
          edit = sceneEdit(
            src.scene,
            parseSceneJSON(readFileSync(values.scene!, 'utf8'), { maxRegions: 32, minSize: 16, maxSize: 8192 }),
          );
        }
        const applied = applyEdit(src.scene, edit);
        const { repaintPasses, runnablePass } = await import('../../paint/passes.ts');
        const decision = await repaintPasses({ pass: src.rag, scene: src.scene }, applied, {
          model: engine.modelId,
          ...(repaintSeed !== undefined ? { repaintSeed } : {}),
        });
        if (decision.mode === 'unchanged') throw new UserError(`nothing to repaint: ${decision.reason}`, 1);
        if (decision.mode === 'regenerate')
          throw new UserError(
            `this edit cannot be repainted (${decision.reason}): save the edited scene and run \`generate --scene\``,
            1,
          );
        passes = decision.passes.map((p) => runnablePass(p));
        scene = applied.scene;
        passes.forEach((p, i) =>
          process.stderr.write(`repainting ${decision.regionIds[i]!.join(', ')}: "${p.Repainting_HB_prompt}"\n`),
        );
      }
      const { repaintPassesJob } = await import('../../engine/pipeline/jobs.ts');
      const noise = await noiseFile(values.noise, passes[0]!.HB_m_offset_list.length);
      await loadWeights(engine);
      const timer = jobTimer('repaint');
      const out = await repaintPassesJob(
        engine,
        passes,
        { params: src.rag, ...src.parent },
        { onProgress: timer.onProgress, previewEvery: 0, baseDir: src.baseDir, ...(noise ? { noise } : {}) },
      );
      let rag = passes[passes.length - 1]!;
      process.stderr.write(timer.summary(out.result));
      process.stderr.write(
        `${out.mode === 'repaint-stored' ? "replayed the parent's stored trajectory" : 're-ran the parent from its noise (exact)'}\n`,
      );
      if (typeof rag.Repainting_mask === 'string') {
        const { maskSource } = await import('../../engine/pipeline/run-plan.ts');
        rag = { ...rag, Repainting_mask: path.resolve(maskSource(rag.Repainting_mask, src.baseDir) as string) };
      }
      await writeOutputs(out, {
        out: values.out,
        latentsOut: values['latents-out'],
        saveDir: values['save-generation'],
        engine,
        rag,
        ...(scene ? { scene } : {}),
      });
      process.stderr.write(`wrote ${values.out}\n`);
      return 0;
    } finally {
      await engine.close();
    }
  },
};
