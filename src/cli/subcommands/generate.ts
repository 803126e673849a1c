import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, readEnvironment } from '../../config/config.ts';
import { UserError } from '../../config/errors.ts';
import type { Engine } from '../../engine/pipeline/engine.ts';
import type { ImageFormat } from '../../engine/pipeline/image.ts';
import type { JobOutput } from '../../engine/pipeline/jobs.ts';
import type { NoiseSource } from '../../engine/pipeline/noise-source.ts';
import type { RagParams } from '../../rag/params.ts';
import type { Scene } from '../../scene/schema.ts';
import { intOption, parseCommandArgs, type CliCommand } from '../command.ts';

const usage =
  'scenewright generate --model <dir> (--scene <scene.json> | --prompt "<text>" | --rag-params <official.json> [--entry N])\n' +
  '       [--seed N] [--steps N] [--width W --height H] [--guidance G] [--noise <file.safetensors>] --out <image.png|.webp>\n' +
  '       [--latents-out <file.safetensors>] [--save-generation <dir>] [--lora <file.safetensors>[:<scale>]]...\n' +
  '       --prompt: plain FLUX; --scene: RAG from a Scene (regions → hard binding + soft refinement; --width/--height\n' +
  "       override the scene's size, the boxes being fractions);\n" +
  '       --rag-params: the official RAG parameter format (a gallery file: --entry picks the object, default 0).\n' +
  '       --noise: noise_draw_0 … n (unpacked NCHW: global latent, each box, repaint box) instead of the seeded noise.\n' +
  '       --save-generation: a folder that `repaint --from` can edit (image, parameters, trajectory).\n' +
  '       --lora: a style (LoRA) for the whole picture, repeatable, scale −4…4 (default 1).\n' +
  '       A file path or a style name in LORA_DIR; a Scene JSON\'s "loras" (top level and per region) name them the same way.\n' +
  '       (--model defaults to MODEL_DIR; EXECUTION_PROVIDER and ORT_THREADS apply)\n' +
  '       Defaults: --seed derived from the prompt or scene text (the same text paints the same image); --steps and\n' +
  "       --guidance the model's (dev 20 and 3.5, schnell 4; models/*.json); size the scene's, 1024×1024 for --prompt;\n" +
  "       --out's extension picks PNG, lossless WebP or JPEG.";

export const GENERATE_FLAGS = {
  model: { type: 'string' },
  out: { type: 'string' },
  seed: { type: 'string' },
  steps: { type: 'string' },
  noise: { type: 'string' },
  'latents-out': { type: 'string' },
  'save-generation': { type: 'string' },
} as const;

/**
 * Progress and timing of one job on stderr. Each step line shows that step's own transformer run() time; what
 * the job spends outside the runs (text encoding, session creation, decoding) is reported apart, so that
 * s/step is the true mean of the step times (a step line used to be the time since before text encoding).
 */
export interface JobTimer {
  onProgress(step: number, total: number, previewPng?: Uint8Array, stepMs?: number): void;
  /** The closing line: mean s/step, text encoding, any other loading (sessions), decode and the rest, total. */
  summary(result: { stepMs: number[]; encodeMs: number }): string;
}

export function jobTimer(label: string): JobTimer {
  const t0 = performance.now();
  let last = t0;
  let outside = 0;
  const tty = process.stderr.isTTY;
  const s = (ms: number) => (ms / 1000).toFixed(2);
  return {
    onProgress(step, total, _png, stepMs) {
      const now = performance.now();
      const wall = now - last;
      last = now;
      const own = stepMs ?? wall;
      outside += Math.max(0, wall - own);
      if (step === 1) process.stderr.write(`${label}: prompts encoded in ${s(wall - own)} s\n`);
      const line = `${label}: step ${step}/${total}  ${s(own)} s`;
      process.stderr.write(tty ? `\r${line}${step === total ? '\n' : ''}` : `${line}\n`);
    },
    summary({ stepMs, encodeMs }) {
      const total = performance.now() - t0;
      const steps = stepMs.reduce((a, b) => a + b, 0);
      const mean = stepMs.length ? steps / stepMs.length : 0;
      const sessions = Math.max(0, outside - encodeMs);
      return (
        `${label}: ${stepMs.length} steps, ${s(mean)} s/step (mean of the step times, ${s(steps)} s); ` +
        `text encoding ${s(encodeMs)} s, other loading ${s(sessions)} s, ` +
        `decode and output ${s(Math.max(0, performance.now() - last))} s; ${s(total)} s in all\n`
      );
    },
  };
}

/**
 * The engine for --model (or MODEL_DIR): its configs and tensor headers are read, nothing is loaded yet, so that
 * every check of the request (and any question back to the user) comes before minutes of loading.
 */
export async function openEngine(model: string | undefined): Promise<Engine> {
  const config = loadConfig(readEnvironment());
  const dir = model ?? config.model.dir;
  if (!dir) throw new UserError('which model? Give --model <FLUX checkpoint folder> or set MODEL_DIR', 2);
  const { Engine } = await import('../../engine/pipeline/engine.ts');
  return Engine.open({
    modelDir: dir,
    runtime: { executionProvider: config.model.executionProvider, threads: config.model.threads },
    memoryCheck: config.model.memoryCheck,
    weights: config.model.weights,
    weightsCacheDir: config.model.weightsCacheDir,
  });
}

/** Loads every component once, before the job, reported apart from its steps. */
export async function loadWeights(engine: Engine): Promise<void> {
  await engine.warmUp((s) =>
    process.stderr.write(
      `loaded ${s.component} in ${(s.ms / 1000).toFixed(2)} s (resident ${(s.rssBytes / 2 ** 30).toFixed(2)} GiB)\n`,
    ),
  );
}

/** The image format --out asks for, checked before anything runs. */
export async function outFormat(out: string): Promise<ImageFormat> {
  const { formatOf } = await import('../../engine/pipeline/image.ts');
  const format = formatOf(out);
  if (!format) throw new UserError(`--out ${out}: write .png, .webp (lossless) or .jpg/.jpeg`, 2);
  return format;
}

export async function noiseFile(file: string | undefined, boxCount: number): Promise<NoiseSource | undefined> {
  if (!file) return undefined;
  const { readSafetensors } = await import('../../engine/weights/safetensors.ts');
  const { explicitNoise } = await import('../../engine/pipeline/noise-source.ts');
  return explicitNoise(readSafetensors(file).tensors, boxCount, file);
}

/** Writes the image, and the latents / generation folder when asked. */
export async function writeOutputs(
  out: JobOutput,
  o: { out: string; latentsOut?: string; saveDir?: string; engine: Engine; rag?: RagParams; scene?: Scene },
): Promise<void> {
  const format = await outFormat(o.out);
  const { encodeImage } = await import('../../engine/pipeline/image.ts');
  // The job's image is PNG, and so is a saved generation's image.png (a later repaint composites onto it).
  writeFileSync(o.out, format === 'png' ? out.image : await encodeImage(out.rgb, format));
  if (o.latentsOut) {
    const { writeSafetensors } = await import('../../engine/weights/safetensors.ts');
    const C = o.engine.steps.cfg.inChannels;
    const tokens = out.result.latents.length / C;
    const tensors: Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> = {
      final_latents: { dtype: 'float32', shape: [1, tokens, C], data: out.result.latents },
    };
    if (out.result.repaintLatents)
      tensors.final_repainting_latents = { dtype: 'float32', shape: [1, tokens, C], data: out.result.repaintLatents };
    writeSafetensors(o.latentsOut, tensors, { producer: 'scenewright generate' });
  }
  if (o.saveDir) {
    if (!o.rag)
      throw new UserError(
        '--save-generation needs RAG parameters: use --scene or --rag-params (a plain --prompt has none)',
        2,
      );
    const { saveGeneration } = await import('../generation-files.ts');
    saveGeneration(o.saveDir, {
      out,
      rag: o.rag,
      ...(o.scene ? { scene: o.scene } : {}),
      model: o.engine.modelId,
      version: o.engine.version,
    });
  }
}

export const command: CliCommand = {
  summary: 'paint an image: a plain prompt, a Scene (RAG) or official RAG parameters',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        ...GENERATE_FLAGS,
        scene: { type: 'string' },
        prompt: { type: 'string' },
        'rag-params': { type: 'string' },
        entry: { type: 'string' },
        width: { type: 'string' },
        height: { type: 'string' },
        guidance: { type: 'string' },
        lora: { type: 'string', multiple: true },
      },
      usage,
    );
    if (positionals.length) throw new UserError(`unexpected arguments: ${positionals.join(' ')}\n\nusage: ${usage}`, 2);
    const sources = [values.scene, values.prompt, values['rag-params']].filter((v) => v !== undefined);
    if (sources.length !== 1)
      throw new UserError(`give exactly one of --scene, --prompt, --rag-params\n\nusage: ${usage}`, 2);
    if (!values.out) throw new UserError(`--out <image.png> is required\n\nusage: ${usage}`, 2);
    const seed = intOption(values.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    const steps = intOption(values.steps, 'steps', 1, 1000);
    const width = intOption(values.width, 'width', 16, 8192);
    const height = intOption(values.height, 'height', 16, 8192);
    const guidance = values.guidance === undefined ? undefined : Number(values.guidance);
    if (guidance !== undefined && !Number.isFinite(guidance))
      throw new UserError(`--guidance must be a number (got "${values.guidance}")`, 2);
    for (const [name, v] of [
      ['width', width],
      ['height', height],
    ] as const) {
      if (v !== undefined && v % 16 !== 0)
        throw new UserError(`--${name} ${v} must be a positive multiple of 16 (FLUX works on 16-px tokens)`, 2);
    }
    await outFormat(values.out);
    if (values.prompt !== undefined && !values.prompt.trim()) throw new UserError('--prompt is empty', 2);
    const { parseLoraFlags, passWithStyles, resolvedLoraFlags } = await import('../loras.ts');
    let loras = parseLoraFlags(values.lora);
    if (loras.length && values.prompt !== undefined) {
      // Found and hashed before minutes of loading, like a Scene's styles.
      const loraDir = loadConfig(readEnvironment()).model.loraDir;
      loras = await resolvedLoraFlags(loras, loraDir ? { loraDir } : {});
    }
    if (values.prompt !== undefined && values['save-generation'])
      throw new UserError(
        '--save-generation needs RAG parameters: use --scene or --rag-params (a plain --prompt has none)',
        2,
      );
    // Read before the model: a bad file or --entry is said at once.
    const limits = { maxRegions: 32, minSize: 16, maxSize: 8192 };
    let scene: Scene | undefined;
    let official: RagParams[] | undefined;
    if (values.scene !== undefined) {
      const { parseSceneJSON } = await import('../../scene/json.ts');
      const { validateScene } = await import('../../scene/validate.ts');
      scene = parseSceneJSON(readFileSync(values.scene, 'utf8'), limits);
      // Boxes are fractions of the image, so --width/--height repaint the same layout at another size.
      if (width !== undefined || height !== undefined)
        scene = validateScene({ ...scene, width: width ?? scene.width, height: height ?? scene.height }, limits);
    } else if (values['rag-params'] !== undefined) {
      const { loadRagParamsFile } = await import('../../rag/params.ts');
      official = loadRagParamsFile(values['rag-params']);
    }
    const entry = official ? (intOption(values.entry, 'entry', 0, official.length - 1) ?? 0) : 0;
    const { generateJob, generatePlanJob, repaintJob } = await import('../../engine/pipeline/jobs.ts');
    const engine = await openEngine(values.model);
    try {
      let rag: RagParams | undefined;
      let baseDir: string | undefined;
      if (values.prompt !== undefined) {
        const { plainPlan } = await import('../../engine/pipeline/run-plan.ts');
        const { seedFromText } = await import('../../paint/scene-to-rag.ts');
        const d = engine.defaults;
        const plan = plainPlan(values.prompt, {
          width: width ?? 1024,
          height: height ?? 1024,
          steps: steps ?? d.steps,
          guidance: guidance ?? d.guidance,
          seed: seed ?? seedFromText(values.prompt),
          textLength: d.textLength,
          loras,
        });
        const styleNote = loras.length
          ? `, styles ${loras.map((l) => `${path.basename(l.name, '.safetensors')}:${l.scale}`).join(', ')}`
          : '';
        process.stderr.write(
          `${engine.modelId}: plain FLUX, ${plan.width}×${plan.height}, ${plan.steps} steps, seed ${plan.seed}${styleNote}\n`,
        );
        await loadWeights(engine);
        const timer = jobTimer('generate');
        const out = await generatePlanJob(engine, plan, {
          onProgress: timer.onProgress,
          previewEvery: 0,
          noise: await noiseFile(values.noise, 0),
        });
        process.stderr.write(timer.summary(out.result));
        await writeOutputs(out, { out: values.out, latentsOut: values['latents-out'], engine });
        process.stderr.write(`wrote ${values.out}\n`);
        return 0;
      }
      if (scene) {
        const { generationPasses } = await import('../../paint/passes.ts');
        [rag] = generationPasses(scene, {
          model: engine.modelId,
          ...(seed !== undefined ? { seed } : {}),
          ...(steps !== undefined ? { steps } : {}),
          ...(guidance !== undefined ? { guidance } : {}),
        });
      } else {
        const file = values['rag-params']!;
        rag = {
          ...official![entry]!,
          ...(seed !== undefined ? { seed } : {}),
          ...(steps !== undefined ? { num_inference_steps: steps } : {}),
          ...(width !== undefined ? { width } : {}),
          ...(height !== undefined ? { height } : {}),
          ...(guidance !== undefined ? { guidance_scale: guidance } : {}),
        };
        baseDir = path.dirname(path.resolve(file));
        if (typeof rag.Repainting_mask === 'string') {
          const { maskSource } = await import('../../engine/pipeline/run-plan.ts');
          rag.Repainting_mask = path.resolve(maskSource(rag.Repainting_mask, baseDir) as string);
        }
      }
      // Styles are files: each is found and hashed before minutes of loading. Paths in a Scene or parameters file
      // are relative to that file.
      const styleBase = values.scene !== undefined ? path.dirname(path.resolve(values.scene)) : baseDir;
      const loraDir = loadConfig(readEnvironment()).model.loraDir;
      rag = await passWithStyles(rag!, loras, {
        ...(styleBase ? { baseDir: styleBase } : {}),
        ...(loraDir ? { loraDir } : {}),
      });
      const { passStyleNames } = await import('../../paint/styles.ts');
      const styles = passStyleNames([rag]);
      process.stderr.write(
        `${engine.modelId}: RAG, ${rag.width}×${rag.height}, ${rag.HB_prompt_list.length} boxes, SR δ ${rag.SR_delta}, seed ${rag.seed}${styles.length ? `, styles ${styles.map((s) => path.basename(s, '.safetensors')).join(', ')}` : ''}\n`,
      );
      const noise = await noiseFile(values.noise, rag!.HB_m_offset_list.length);
      await loadWeights(engine);
      const timer = jobTimer('generate');
      const { onProgress } = timer;
      const { isRepaint } = await import('../../rag/params.ts');
      let out: JobOutput;
      if (isRepaint(rag!)) {
        // Official repaint parameters: the original is re-run from its noise (exact mode), its image is the parent.
        const parent = Object.fromEntries(
          Object.entries(rag!).filter(([k]) => !k.startsWith('Repainting_')),
        ) as RagParams;
        out = await repaintJob(engine, rag!, { params: parent }, { onProgress, previewEvery: 0, noise, baseDir });
      } else {
        out = await generateJob(engine, rag!, { onProgress, previewEvery: 0, noise, baseDir });
      }
      process.stderr.write(timer.summary(out.result));
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
