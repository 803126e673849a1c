/**
 * The engine of one checkpoint: text encoders (embeddings cached by prompt), the step runner (RAG step graphs
 * cached by signature), the VAE and the preview map, opened lazily. `paint` runs a plan end to end and returns
 * the final latents, the decoded image and the trajectory a later repaint needs.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describeForms, loadCheckpoint } from '../checkpoint/index.ts';
import { VaeCodec, type Nchw } from '../graphs/vae-codec.ts';
import { decodeVae } from '../graphs/vae-tiled.ts';
import { latentGeometry, unpackLatents } from '../latents.ts';
import type { FloatType } from '../onnx/graph.ts';
import { StepRunner } from '../step/step-runner.ts';
import { graphFormFor, type RuntimeOptions } from '../runtime/session.ts';
import { parseSchedulerConfig, type SchedulerConfig } from '../scheduler.ts';
import { T5_LENGTH } from '../tokenizers/t5.ts';
import { loadModelManifest, modelIdForTransformerConfig, type ModelId, type ModelManifest } from '../model-manifest.ts';
import type { RagParams } from '../../rag/params.ts';
import { UserError } from '../../config/errors.ts';
import { childLogger } from '../../log/logger.ts';
import { LoraLibrary, type LoraLoader } from '../lora/library.ts';
import { TextEncoders, type Conditioning } from './conditioning.ts';
import { checkFits, freeMemory, memoryNeed } from './memory-fit.ts';
import { defaultWeightsCacheDir, formsFor, PreparedCheckpoint, type WeightForms } from './weight-forms.ts';
import { FOLDER_DEFAULTS_FILE, PREPARED_FOLDER } from '../weights/forms.ts';
import { planFromRagParams, type PlanDefaults, type RunPlan } from './run-plan.ts';
import { LatentPreview } from './preview.ts';
import { runPlan, type RunOptions, type RunResult } from './run.ts';

/** Bumped when a change to the engine changes the pixels a seed gives. */
export const ENGINE_VERSION = '2';

export interface EngineOptions {
  modelDir: string;
  runtime: RuntimeOptions;
  /**
   * The memory check at warm-up: on by default (the GPU's free memory on CUDA, the host's on CPU); `false` skips
   * it; a number is the budget in bytes instead of the measured free memory.
   */
  memoryCheck?: boolean | number;
  /** Compute type inside the transformer graphs; default by provider (runtime graphFormFor: float32 on CPU, bf16 on CUDA). */
  computeType?: FloatType;
  /** What each component's weights run in (config WEIGHTS); default as stored. */
  weights?: Partial<WeightForms>;
  /** Where prepared (repacked, quantized) weights are written once; default defaultWeightsCacheDir(). */
  weightsCacheDir?: string;
  /** Reads a LoRA file mapped onto this transformer (default: lora/files' reader). */
  loraLoader?: LoraLoader;
  /** Bytes of LoRA factors kept in memory between jobs (default DEFAULT_LORA_CACHE_BYTES). */
  loraCacheBytes?: number;
}

const log = childLogger('engine');

/** One component loaded by warmUp(): its wall time and the process's resident memory right after it. */
export interface WarmUpStep {
  component: 'text encoders' | 'transformer' | 'vae' | 'preview';
  ms: number;
  rssBytes: number;
}

export type PaintOptions = Omit<RunOptions, 'steps' | 'conditioning' | 'scheduler'> & { conditioning?: Conditioning };

export interface PaintResult extends RunResult {
  /** The painted image ([1, 3, H, W], [-1, 1] scale, not clamped): the repaint's when repainting. */
  image: Nchw;
}

export class Engine {
  readonly modelId: ModelId;
  readonly manifest: ModelManifest;
  readonly version: string;
  readonly steps: StepRunner;
  /** The LoRA files read so far, kept between jobs (style switches read no file twice). */
  readonly loras: LoraLibrary;
  readonly scheduler: SchedulerConfig;
  private readonly encoders = new Map<number, TextEncoders>();
  private vaeCodec?: VaeCodec;
  private previewMap?: Promise<LatentPreview>;

  private readonly memoryCheck: boolean | number;
  private readonly computeType: FloatType;

  private constructor(
    readonly checkpoint: PreparedCheckpoint,
    readonly runtime: RuntimeOptions,
    o: EngineOptions,
  ) {
    this.memoryCheck = o.memoryCheck ?? true;
    const cfg = checkpoint.transformerConfig;
    this.modelId = modelIdForTransformerConfig({ guidance_embeds: cfg.guidanceEmbeds });
    this.manifest = loadModelManifest(this.modelId);
    this.scheduler = parseSchedulerConfig(checkpoint.schedulerConfig(), `${o.modelDir} scheduler config`);
    const form = graphFormFor(runtime.executionProvider);
    this.computeType = o.computeType ?? form.computeType;
    this.steps = StepRunner.forCheckpoint(checkpoint, runtime, {
      ...form,
      computeType: o.computeType ?? form.computeType,
    });
    const layers = this.steps.loraLayers;
    this.loras = new LoraLibrary(
      { label: `${this.modelId} transformer`, layerShape: (name) => layers.get(name) },
      o.loraLoader,
      o.loraCacheBytes,
    );
    const forms = Object.entries(checkpoint.forms)
      .filter(([, f]) => f !== 'auto')
      .map(([c, f]) => `${c} ${f}`)
      .join(', ');
    this.version = `engine ${ENGINE_VERSION}; weights ${fingerprint(o.modelDir)}${forms ? ` (${forms})` : ''}`;
  }

  /** Opens a checkpoint (configs and shapes checked now; weights are prepared and sessions created on first use). */
  static open(o: EngineOptions): Engine {
    if (!existsSync(o.modelDir))
      throw new UserError(
        `model folder ${o.modelDir} does not exist: point --model (or MODEL_DIR) at a FLUX.1 checkpoint folder`,
        2,
      );
    const { forms, from } = formsFor(o.modelDir, o.weights);
    if (from === 'folder')
      log.info({ forms }, `weights forms from ${path.join(o.modelDir, FOLDER_DEFAULTS_FILE)} (WEIGHTS overrides them)`);
    const dir = statSync(o.modelDir).isDirectory() ? o.modelDir : path.dirname(o.modelDir);
    const raw = loadCheckpoint(o.modelDir);
    log.info({ model: o.modelDir, forms }, `model files: ${describeForms(raw)}`);
    const ck = new PreparedCheckpoint(raw, forms, o.weightsCacheDir ?? defaultWeightsCacheDir(), [
      path.join(dir, PREPARED_FOLDER),
    ]);
    return new Engine(ck, o.runtime, o);
  }

  /**
   * Loads every component now (text encoders, the one transformer step session, the VAE, the preview map), so
   * that no job pays for it: the worker calls this when it starts. Logs each component with its load time and
   * the resident memory after it; `onStep` sees the same.
   */
  async warmUp(onStep?: (s: WarmUpStep) => void): Promise<WarmUpStep[]> {
    const done: WarmUpStep[] = [];
    const t00 = performance.now();
    if (this.memoryCheck !== false) {
      const need = memoryNeed(this.checkpoint, this.computeType);
      const free =
        typeof this.memoryCheck === 'number'
          ? { bytes: this.memoryCheck, where: 'the memory budget' }
          : freeMemory(this.runtime.executionProvider);
      log.info({ needBytes: need.total, freeBytes: free?.bytes, parts: need.parts }, 'memory check');
      checkFits(this.modelId, need, free, this.runtime.executionProvider);
    }
    const load = async (component: WarmUpStep['component'], fn: () => Promise<unknown>) => {
      log.info({ component, model: this.modelId }, `loading ${component}…`);
      const t0 = performance.now();
      await fn();
      const s: WarmUpStep = { component, ms: Math.round(performance.now() - t0), rssBytes: process.memoryUsage().rss };
      log.info(
        { ...s, rssMiB: Math.round(s.rssBytes / 2 ** 20) },
        `${component} loaded in ${(s.ms / 1000).toFixed(1)} s (resident ${(s.rssBytes / 2 ** 30).toFixed(2)} GiB)`,
      );
      done.push(s);
      onStep?.(s);
    };
    // Encoding the empty prompt opens both encoders; its embedding is cached for later use.
    await load('text encoders', async () => {
      const enc = this.conditioning();
      await Promise.all([enc.t5(''), enc.clip('')]);
    });
    await load('transformer', () => this.steps.prepare());
    await load('vae', () => Promise.all([this.vae.prepareDecoder(), this.vae.prepareEncoder()]));
    await load('preview', () => this.preview());
    log.info(
      { model: this.modelId, ms: Math.round(performance.now() - t00) },
      `model ${this.modelId} ready in ${((performance.now() - t00) / 1000).toFixed(1)} s`,
    );
    return done;
  }

  /** Per-model defaults for what RAG parameters leave out (models/<id>.json). */
  get defaults(): PlanDefaults {
    const d = this.manifest.defaults;
    return { steps: d.num_inference_steps, guidance: d.guidance_scale, textLength: T5_LENGTH[this.checkpoint.variant] };
  }

  /** The text encoders for a T5 length (one set per length; embeddings cached by prompt). */
  conditioning(textLength = this.defaults.textLength): TextEncoders {
    let e = this.encoders.get(textLength);
    if (!e) {
      e = new TextEncoders(this.checkpoint, this.runtime, { textLength });
      this.encoders.set(textLength, e);
    }
    return e;
  }

  get vae(): VaeCodec {
    this.vaeCodec ??= new VaeCodec(this.checkpoint.component('vae'), this.runtime);
    return this.vaeCodec;
  }

  /** The linear latent → RGB map for previews, fitted to this VAE on first use. */
  preview(): Promise<LatentPreview> {
    this.previewMap ??= LatentPreview.calibrate(this.vae);
    return this.previewMap;
  }

  plan(params: RagParams, baseDir?: string): Promise<RunPlan> {
    return planFromRagParams(params, this.defaults, { baseDir });
  }

  /** Refuses a plan beyond what the step graph takes (before any step runs). */
  checkPlan(plan: RunPlan): void {
    const geo = latentGeometry(plan.width, plan.height, this.vae.latentChannels);
    this.steps.checkLimits(
      {
        boxes: plan.boxes.length,
        cells: plan.sr?.segments.length ?? 0,
        repaint: !!plan.repaint,
        repaintSingle: false,
        prepass: !!plan.repaint,
      },
      geo.tokens,
    );
  }

  /** Runs the denoising loop of a plan (no decode). */
  run(plan: RunPlan, o: PaintOptions = {}): Promise<RunResult> {
    this.checkPlan(plan);
    return runPlan(plan, {
      ...o,
      steps: this.steps,
      loras: o.loras ?? this.loras,
      conditioning: o.conditioning ?? this.conditioning(plan.textLength),
      scheduler: this.scheduler,
    });
  }

  /** Packed latents [tokens, 64] of a width × height image → decoded image. */
  async decode(packed: Float32Array, width: number, height: number): Promise<Nchw> {
    const geo = latentGeometry(width, height, this.vae.latentChannels);
    // Tiled above ≈ 720² (graphs/vae-tiled.ts): the full-size decoder activations would hold ≈ 2 GB at 1024².
    return decodeVae(this.vae, {
      data: unpackLatents(packed, 1, geo.channels, geo.height, geo.width),
      shape: [1, geo.channels, geo.height, geo.width],
    });
  }

  /** Denoises and decodes: the image of the repaint pass when the plan repaints, else of the main pass. */
  async paint(plan: RunPlan, o: PaintOptions = {}): Promise<PaintResult> {
    const res = await this.run(plan, o);
    const image = await this.decode(res.repaintLatents ?? res.latents, plan.width, plan.height);
    return { ...res, image };
  }

  async close(): Promise<void> {
    await this.steps.release();
    for (const e of this.encoders.values()) await e.release();
    this.encoders.clear();
    await this.vaeCodec?.release();
  }
}

/**
 * A short hash that pins the weights: every config and the name and size of every .safetensors / .gguf file under the
 * model folder (two levels deep), or of the single file. Cheap: no weight bytes are read.
 */
function fingerprint(modelDir: string): string {
  const h = createHash('sha256');
  const visit = (p: string, depth: number) => {
    const st = statSync(p);
    if (st.isFile()) {
      if (p.endsWith('.json')) h.update(`${path.basename(p)}:${readFileSync(p, 'utf8')}\n`);
      else if (p.endsWith('.safetensors') || p.endsWith('.gguf')) h.update(`${path.basename(p)}:${st.size}\n`);
      return;
    }
    if (depth > 2) return;
    for (const name of readdirSync(p).sort()) visit(path.join(p, name), depth + 1);
  };
  visit(modelDir, 0);
  return h.digest('hex').slice(0, 12);
}
