import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Config } from '../config/config.ts';
import type { BotQueue } from '../queue/queue.ts';
import type { DiscordTarget, Job, PaintRequest } from '../queue/schema.ts';
import { RagParamsError, type RagParams } from '../rag/params.ts';
import { applyEdit, type AppliedEdit } from '../scene/edit.ts';
import { generationPasses, repaintPasses, runnablePass } from '../paint/passes.ts';
import { isStylePath, passStyleProblems, pinStyles } from '../paint/styles.ts';
import { browseStyles, findStyle, listStyles, StyleError, type StyleSummary } from '../engine/lora/catalog.ts';
import { lastPassOf } from '../paint/stored.ts';
import { MODEL_IDS, type ModelId } from '../engine/model-manifest.ts';
import { normalizeScene, sizeForAspect } from '../scene/normalize.ts';
import type { Scene, StyleRef } from '../scene/schema.ts';
import { SceneError, sceneStyleNames, validateScene, type SceneLimits } from '../scene/validate.ts';
import type { Store } from '../store/store.ts';
import type { Generation, GenerationKind, GenerationParams } from '../store/schema.ts';
import type { PainterInfo } from '../worker/painter.ts';
import { Access, type Requester } from './access.ts';
import { readImage, safetensorsWhole } from './files.ts';
import { Refusal } from './errors.ts';
import { Limiter, type Slot } from './limits.ts';
import { modelChoices, servedDefault, type ModelChoice } from './models.ts';
import type { BotPlanner, StyleChoice } from './planning.ts';
import { styleChoiceOf } from '../planner/styles.ts';
import { capitalize } from '../planner/lexicon.ts';
import { quote, visibleText } from './text.ts';
import { childLogger } from '../log/logger.ts';

const log = childLogger('bot');

/**
 * An unknown style name is the user's to fix (with the names there are); a folder or file that cannot be used is
 * the operator's: the user gets a refusal without server paths, the log gets the reason.
 */
/** Paint passes the engine would refuse (more styles than its slots, say) are the user's to change: a refusal. */
async function painterPasses<T>(make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (e) {
    if (e instanceof RagParamsError) throw new Refusal(`That cannot be painted: ${e.problems[0]}.`);
    throw e;
  }
}

function styleRefusal(e: StyleError): Refusal {
  if (e.unknownName) return new Refusal(`${capitalize(e.message)}. See /styles.`);
  log.warn({ err: e }, 'a style cannot be used');
  return new Refusal("A style this needs cannot be used right now; the bot's operator can see why in its log.");
}

/** One version in the history of a conversation (a chain of edits), oldest first. */
export interface Version {
  generation: Generation;
  /** 1 for the first generation of the conversation. */
  number: number;
  /** The instruction that made it: the prompt, the reply, or "new seed" for a reroll. */
  label: string;
  /** Its image (or its layout picture, for a version never painted); undefined when its files are gone. */
  png?: Buffer;
  /** It was painted (or planned) but its files have been deleted since. */
  missing: boolean;
}

export interface History {
  versions: Version[];
  /** Earlier versions whose records were deleted: the chain starts later than the conversation did. */
  truncated: boolean;
}

/**
 * Whether a generation's files are all there and whole for a repaint of it (a repaint's own repaints replay
 * its trajectory). A damaged file counts as a missing one: the edit is painted afresh instead.
 */
export async function repaintable(g: Generation): Promise<boolean> {
  if (g.status !== 'done' || !(await readImage(g.artifacts['image.png']))) return false;
  // The engine's stored trajectory (src/engine/pipeline/trajectory.ts); the bot only checks that it is whole.
  return g.kind !== 'repaint' || safetensorsWhole(g.artifacts['trajectory.safetensors']);
}

async function readPicture(file: string | undefined): Promise<Buffer | undefined> {
  return file && existsSync(file) ? readImage(file) : undefined;
}

/** What made a version, in words for the history picture. */
export function versionLabel(g: Generation): string {
  if (g.parentId && g.kind === 'generate' && !(g.planner ?? '').startsWith('edit:'))
    return `🎲 new seed for ${g.requestText}`;
  return g.requestText;
}

/** Whether images can be painted, and if not, why (in words for users). */
export interface PaintingState {
  /** none: no MODEL_DIR; loading: the painter is starting; external: painted by `worker` processes. */
  mode: 'none' | 'loading' | 'ready' | 'failed' | 'external';
  reason?: string;
  info?: PainterInfo;
  /** With REDIS_URL: the models live workers paint, from their announcements (models.ts keeps it current). */
  served?: string[];
}

export function canPaint(p: PaintingState): boolean {
  return p.mode === 'loading' || p.mode === 'ready' || p.mode === 'external';
}

/** Where the job's messages go, before the bot's own message exists. */
export type NewTarget = Omit<DiscordTarget, 'messageId'>;

export interface Prepared {
  generation: Generation;
  /** The layout picture (boxes over a blank canvas, or over the parent image for a repaint). */
  layoutPng: Buffer;
  job?: Job;
  position?: number;
  /** Something about the plan worth telling the user. */
  note?: string;
}

export type EditOutcome =
  | { kind: 'clarify'; question: string }
  | { kind: 'nothing'; message: string }
  | ({ kind: 'prepared'; what: 'repaint' | 'regenerate' | 'layout'; changed: string[] } & Prepared);

export interface ImagineInput {
  requester: Requester;
  guildId: string | null;
  prompt: string;
  seed?: number;
  aspect?: string;
  steps?: number;
  model?: string;
  /** Styles for the whole picture (the /imagine `style` option), by name in LORA_DIR. */
  styles?: StyleRef[];
  target: NewTarget;
}

export interface ExplicitInput extends Omit<ImagineInput, 'prompt' | 'aspect'> {
  scene: Scene;
  /** What to show as the request ("/layout: 3 regions"). */
  requestText: string;
}

const PROMPT_MAX = 1000;

export const EMPTY_PROMPT =
  'Tell me what to paint: `/imagine prompt: two cats on a sofa, the left one black`. (Invisible characters do not count.)';

/**
 * The bot's requests, whichever way they arrive (slash command, button, modal, reply, mention): check
 * limits, plan, record the generation, enqueue the painting. Discord messages are somebody else's job.
 */
export class Flows {
  readonly access: Access;
  readonly limiter: Limiter;
  readonly models: ModelChoice[];
  private readonly sceneLimits: SceneLimits;
  /** The slot each request holds, by its Requester (the same object the request is run with). */
  private readonly slots = new WeakMap<Requester, Slot>();

  constructor(
    private readonly config: Config,
    private readonly store: Store,
    private readonly queue: BotQueue,
    private readonly planner: BotPlanner,
    readonly painting: PaintingState,
  ) {
    this.access = new Access(config);
    this.limiter = new Limiter(config, store, queue);
    this.models = modelChoices();
    const { maxRegions, minSize, maxSize } = config.limits;
    this.sceneLimits = { maxRegions, minSize, maxSize };
  }

  get canPaint(): boolean {
    return canPaint(this.painting);
  }

  /**
   * The checks that cost nothing, run before acknowledging so that a refusal is private, and the user's slot:
   * taken here, before any planning, and freed once the job is queued. The caller releases it when done
   * (releasing twice is harmless).
   */
  async precheck(r: Requester, text: string | undefined, { paints }: { paints: boolean }): Promise<Slot> {
    const refusal = this.access.where(r) ?? (text !== undefined ? this.checkText(text, r) : undefined);
    if (refusal) throw new Refusal(refusal);
    const slot = await this.limiter.reserve(r.userId, { paints: paints && this.canPaint });
    if (typeof slot === 'string') throw new Refusal(slot);
    this.slots.set(r, slot);
    return slot;
  }

  /** The deny list, NSFW terms outside NSFW channels, and text that shows nothing. */
  checkText(text: string, r: Pick<Requester, 'channelNsfw'>): string | undefined {
    return this.access.prompt(visibleText(text), r);
  }

  private settingsFor(userId: string, input: { seed?: number; aspect?: string; steps?: number; model?: string }) {
    const saved = this.store.getUserSettings(userId);
    const known = (id: string | undefined) => (id === undefined ? undefined : this.models.find((m) => m.id === id));
    const loaded = known(this.painting.info?.id);
    if (input.model !== undefined) {
      if (!known(input.model))
        throw new Refusal(
          `I do not know the model "${input.model}". Choose one of: ${this.models.map((m) => m.id).join(', ')}.`,
        );
      if (loaded && loaded.id !== input.model)
        throw new Refusal(`This bot runs ${loaded.id}; ${input.model} is not loaded here. Leave the model option out.`);
    }
    // A saved default for a model this bot does not run is ignored rather than refused every time.
    const fromSettings = known(saved.model) && (!loaded || loaded.id === saved.model) ? saved.model : undefined;
    const model = known(input.model) ??
      known(fromSettings) ??
      loaded ??
      servedDefault(this.models, this.painting.served) ??
      known('flux.1-schnell') ??
      this.models[0] ?? { id: 'flux.1-schnell', name: 'FLUX.1 [schnell]', defaultSteps: 4 };
    const steps = input.steps ?? saved.steps ?? model.defaultSteps;
    if (steps > this.config.limits.maxSteps)
      throw new Refusal(`At most ${this.config.limits.maxSteps} steps are allowed here (you asked for ${steps}).`);
    const aspect = input.aspect ?? saved.aspect ?? '1:1';
    let size: { width: number; height: number };
    try {
      size = sizeForAspect(aspect, this.config.limits.defaultSize, this.config.limits);
    } catch (e) {
      throw new Refusal(`${(e as Error).message}.`);
    }
    const seed = input.seed ?? saved.seed ?? randomInt(0, 2 ** 32);
    return { model: model.id, steps, seed, ...size };
  }

  /** The styles this bot offers (LORA_DIR), with what their files' headers say; none without LORA_DIR. */
  async styles(): Promise<StyleSummary[]> {
    const dir = this.config.model.loraDir;
    if (!dir) return [];
    try {
      return await browseStyles(dir);
    } catch (e) {
      if (!(e instanceof StyleError)) throw e;
      log.warn({ err: e }, 'LORA_DIR cannot be listed');
      throw new Refusal("I cannot list the styles right now; the bot's operator can see why in its log.");
    }
  }

  /**
   * Hashes every style file now (once per file version), so that the first request for each finds it done; says
   * which files are not usable styles (for the operator's log).
   */
  async hashStyles(): Promise<{ styles: number; skipped: string[] }> {
    const dir = this.config.model.loraDir;
    const skipped: string[] = [];
    return { styles: dir ? (await listStyles(dir, skipped)).length : 0, skipped };
  }

  /**
   * The styles as the planner sees them (names and what each looks like); none while LORA_DIR cannot be read, so
   * that requests without a style still go through (styles() logged why).
   */
  private async styleChoices(): Promise<StyleChoice[]> {
    try {
      return (await this.styles()).map(styleChoiceOf);
    } catch (e) {
      if (e instanceof Refusal) return [];
      throw e;
    }
  }

  /**
   * Every style a scene names exists in LORA_DIR: checked before anything is stored or queued, so that an unknown
   * name is answered with the names there are, and a file path from a user is never opened. Returns the scene with
   * each name spelled as its file is ("Watercolor" → "watercolor").
   */
  async checkStyles(scene: Scene): Promise<Scene> {
    const names = sceneStyleNames(scene);
    if (!names.length) return scene;
    const path = names.find(isStylePath);
    if (path) throw new Refusal(`Give a style by its name (see /styles), not a file path like ${quote(path, 80)}.`);
    const dir = this.config.model.loraDir;
    if (!dir)
      throw new Refusal(
        `This bot has no styles (its operator has not set LORA_DIR), so I cannot paint with ${quote(names[0]!, 60)}. Leave the style out.`,
      );
    const spelled = new Map<string, string>();
    for (const name of names) {
      try {
        spelled.set(name, (await findStyle(dir, name)).name);
      } catch (e) {
        if (e instanceof StyleError) throw styleRefusal(e);
        throw e;
      }
    }
    // A hash in a user's Scene JSON is not believed: the request pins this bot's files.
    const fix = (list: StyleRef[] | undefined) =>
      list?.map((l) => ({ name: spelled.get(l.name) ?? l.name, scale: l.scale }));
    const fixed: Scene = {
      ...scene,
      regions: scene.regions.map((r) => (r.loras ? { ...r, loras: fix(r.loras) } : r)),
      ...(scene.loras ? { loras: fix(scene.loras) } : {}),
    };
    // The same style twice under two spellings is one style twice: the scene check says so.
    return this.checkScene(fixed);
  }

  /** Normalises a Scene onto the token grid and checks it against this server's limits. */
  private checkScene(scene: Scene): Scene {
    try {
      return validateScene(normalizeScene(scene, this.sceneLimits), this.sceneLimits);
    } catch (e) {
      if (e instanceof SceneError) throw new Refusal(`That layout cannot be painted: ${e.message}`);
      throw e;
    }
  }

  async imagine(input: ImagineInput): Promise<Prepared> {
    const prompt = visibleText(input.prompt).trim();
    if (!prompt) throw new Refusal(EMPTY_PROMPT);
    if (prompt.length > PROMPT_MAX)
      throw new Refusal(`That prompt is ${prompt.length} characters long; keep it under ${PROMPT_MAX}.`);
    const s = this.settingsFor(input.requester.userId, input);
    const started = Date.now();
    let planned;
    try {
      planned = await this.planner.plan(prompt, {
        width: s.width,
        height: s.height,
        maxRegions: this.config.limits.maxRegions,
        styles: await this.styleChoices(),
      });
    } catch (e) {
      if (e instanceof SceneError)
        throw new Refusal(
          `I could not make a layout from that: ${e.message}. Try describing the objects and where they are.`,
        );
      throw e;
    }
    // The style option applies to the whole picture, besides any style the planner gave the picture or a region.
    const chosen = input.styles ?? [];
    const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
    const planLoras = (planned.scene.loras ?? []).filter((l) => !chosen.some((c) => same(c.name, l.name)));
    const loras = [...chosen, ...planLoras];
    const { loras: _planned, ...plannedScene } = planned.scene;
    const scene = await this.checkStyles(
      this.checkScene({ ...plannedScene, width: s.width, height: s.height, ...(loras.length ? { loras } : {}) }),
    );
    this.store.countUsage(input.requester.userId, 'imagine');
    const prepared = await this.create({
      kind: this.canPaint ? 'generate' : 'layout',
      input,
      requestText: prompt,
      params: await this.withRag({ scene, seed: s.seed, steps: s.steps, model: s.model }),
      planner: planned.planner,
      timings: { plan: Date.now() - started },
    });
    return { ...prepared, note: planned.note };
  }

  async explicit(input: ExplicitInput): Promise<Prepared> {
    const s = this.settingsFor(input.requester.userId, { ...input, aspect: undefined });
    // The layout fixes its own size; seed, steps and model come from the options and settings.
    const scene = await this.checkStyles(this.checkScene(input.scene));
    this.store.countUsage(input.requester.userId, 'layout');
    return this.create({
      kind: this.canPaint ? 'generate' : 'layout',
      input,
      requestText: input.requestText,
      params: await this.withRag({ scene, seed: s.seed, steps: s.steps, model: s.model }),
      planner: 'explicit',
    });
  }

  /** Same layout, new seed. */
  async reroll(parent: Generation, requester: Requester, target: NewTarget): Promise<Prepared> {
    if (!this.canPaint) throw new Refusal(this.noModelText());
    this.store.countUsage(requester.userId, 'reroll');
    const base = parent.kind === 'repaint' ? this.rootParams(parent) : parent.params;
    return this.create({
      kind: 'generate',
      input: { requester, guildId: parent.guildId, target },
      requestText: parent.requestText,
      params: await this.withRag({
        scene: base.scene,
        seed: randomInt(0, 2 ** 32),
        steps: base.steps,
        model: base.model,
      }),
      planner: parent.planner,
      parentId: parent.id,
    });
  }

  /** A repaint's own scene is the edited one; rerolling it paints that scene afresh. */
  private rootParams(g: Generation): GenerationParams {
    return { scene: g.params.scene, seed: g.params.seed, steps: g.params.steps, model: g.params.model };
  }

  /**
   * A change asked for in words. The planner's editor turns it into an Edit; regions changed in place are
   * repainted (same seed, only their boxes change), a moved box or a new global prompt is a new
   * generation from the edited layout, and without a model the edited layout is shown.
   */
  async edit(
    parent: Generation,
    instruction: string,
    requester: Requester,
    target: NewTarget,
    history: string[] = [],
  ): Promise<EditOutcome> {
    const text = visibleText(instruction).trim();
    if (!text) throw new Refusal('Tell me what to change, for example “make the left cat black”.');
    if (text.length > PROMPT_MAX)
      throw new Refusal(`That is ${text.length} characters long; keep it under ${PROMPT_MAX}.`);
    const started = Date.now();
    const lastIds = parent.params.repaint?.regions.map((r) => r.id) ?? [];
    const { edit, planner } = await this.planner.edit(parent.params.scene, text, {
      history,
      lastIds,
      styles: await this.styleChoices(),
    });
    if (edit.kind === 'clarify') return { kind: 'clarify', question: edit.question };
    let scene: Scene;
    let what: 'repaint' | 'regenerate' | 'layout';
    let changed: string[];
    let applied: AppliedEdit | undefined;
    if (edit.kind === 'start_over') {
      const planned = await this.planner.plan(edit.description, {
        width: parent.params.scene.width,
        height: parent.params.scene.height,
        maxRegions: this.config.limits.maxRegions,
        styles: await this.styleChoices(),
      });
      scene = this.checkScene({
        ...planned.scene,
        width: parent.params.scene.width,
        height: parent.params.scene.height,
      });
      what = 'regenerate';
      changed = ['the whole picture'];
    } else {
      try {
        applied = applyEdit(parent.params.scene, edit);
      } catch (e) {
        if (e instanceof SceneError) throw new Refusal(`I could not apply that change: ${e.message}`);
        throw e;
      }
      if (!applied.regenerate && applied.repaint.length === 0) {
        return {
          kind: 'nothing',
          message: `I could not tell what to change in this image from ${quote(text)}. Name a thing in it and say what it should become, e.g. “change the ${parent.params.scene.regions[0]?.label ?? 'cat'} to a dog”.`,
        };
      }
      scene = this.checkScene(applied.scene);
      const labels = new Map([...parent.params.scene.regions, ...scene.regions].map((r) => [r.id, r.label] as const));
      changed = applied.repaint.map((r) => labels.get(r.id) ?? r.id);
      // A repaint reruns the parent's painting: it needs the parent's image and artifacts to exist.
      what = applied.regenerate || !(await repaintable(parent)) ? 'regenerate' : 'repaint';
    }
    scene = await this.checkStyles(scene);
    if (!this.canPaint) what = 'layout';
    this.store.countUsage(requester.userId, what === 'repaint' ? 'repaint' : 'edit');
    const kind: GenerationKind = what === 'layout' ? 'layout' : what === 'repaint' ? 'repaint' : 'generate';
    const base = parent.params;
    let params: GenerationParams = { scene, seed: base.seed, steps: base.steps, model: base.model };
    let mask: Buffer | undefined;
    if (kind === 'repaint' && applied) {
      // The passes are decided here, once (src/paint/passes.ts): several regions are repainted one after another,
      // each bound to its own prompt. The row and the job carry them all; `rag` is the last, with its mask file.
      const model = this.modelId(base.model);
      const decision = await painterPasses(() =>
        repaintPasses({ pass: lastPassOf(base, model), scene: parent.params.scene }, { ...applied, scene }, { model }),
      );
      params.repaint = {
        instruction: text,
        regions: applied.repaint,
        ...(decision.mode === 'repaint' && decision.chained ? { mode: 'chained' as const } : {}),
      };
      if (decision.mode === 'repaint') {
        params.passes = await this.pinned(decision.passes);
        params.rag = runnablePass(params.passes[params.passes.length - 1]!);
        mask = decision.masks[decision.masks.length - 1];
      }
    } else if (kind !== 'layout') {
      params = await this.withRag(params);
    }
    const prepared = await this.create({
      mask,
      kind,
      input: { requester, guildId: parent.guildId, target },
      requestText: text,
      params,
      planner: `edit:${planner}`,
      parentId: parent.id,
      timings: { plan: Date.now() - started },
    });
    return { kind: 'prepared', what, changed, ...prepared };
  }

  private async create(c: {
    kind: GenerationKind;
    input: { requester: Requester; guildId: string | null; target: NewTarget };
    requestText: string;
    params: GenerationParams;
    planner: string | null;
    parentId?: string;
    timings?: Record<string, number>;
    /** The repaint mask (black = repaint): stored as mask.png, and the RAG parameters point at that file. */
    mask?: Buffer;
  }): Promise<Prepared> {
    const parent = c.parentId ? this.store.getGeneration(c.parentId) : undefined;
    if (c.kind !== 'layout') {
      // Checked again right before storing anything: the slot counts requests, this counts jobs.
      const active = await this.queue.activeFor(c.input.requester.userId);
      if (active.length >= this.config.limits.userMaxConcurrentJobs)
        throw new Refusal(
          `You already have ${active.length} images waiting or painting (the limit is ${this.config.limits.userMaxConcurrentJobs}). Wait for one to finish, or delete one.`,
        );
    }
    const generation = this.store.createGeneration({
      kind: c.kind,
      status: c.kind === 'layout' ? 'layout' : 'queued',
      userId: c.input.requester.userId,
      guildId: c.input.guildId,
      channelId: c.input.requester.channelId,
      requestText: c.requestText,
      params: c.params,
      planner: c.planner,
      parentId: c.parentId ?? null,
      timings: c.timings,
    });
    const parentImage = c.kind === 'repaint' ? await readImage(parent?.artifacts['image.png']) : undefined;
    const layoutPng = await this.planner.renderLayout(c.params.scene, parentImage);
    this.store.writeArtifact(generation.id, 'layout.png', layoutPng);
    if (c.kind === 'layout') {
      this.slots.get(c.input.requester)?.release();
      return { generation: this.store.getGeneration(generation.id)!, layoutPng };
    }
    if (c.mask && c.params.rag) {
      const maskPath = this.store.writeArtifact(generation.id, 'mask.png', c.mask);
      c.params = { ...c.params, rag: { ...(c.params.rag as RagParams), Repainting_mask: maskPath } };
      this.store.updateParams(generation.id, c.params);
    }

    const request: PaintRequest = {
      kind: c.kind === 'repaint' ? 'repaint' : 'generate',
      generationId: generation.id,
      params: c.params,
      ...(c.kind === 'repaint' && parent
        ? { parent: { generationId: parent.id, params: parent.params, artifacts: parent.artifacts } }
        : {}),
    };
    const { job, position } = await this.queue.enqueue({
      userId: c.input.requester.userId,
      request,
      target: c.input.target,
    });
    // Queued: from now on the job itself counts against the user's limit.
    this.slots.get(c.input.requester)?.release();
    const updated = this.store.updateGeneration(generation.id, { jobId: job.id });
    return { generation: updated, layoutPng, job, position };
  }

  private modelId(model: string): ModelId | undefined {
    return (MODEL_IDS as readonly string[]).includes(model) ? (model as ModelId) : undefined;
  }

  /**
   * The RAG parameters the engine will run, stored with the generation so the row says exactly what was painted:
   * each style with the hash of the file it names here, which every worker checks its own file against.
   */
  private async withRag(p: GenerationParams): Promise<GenerationParams> {
    const passes = await this.pinned(
      await painterPasses(async () =>
        generationPasses(p.scene, { model: this.modelId(p.model), seed: p.seed, steps: p.steps }),
      ),
    );
    return { ...p, rag: passes[0], passes };
  }

  private async pinned(passes: RagParams[]): Promise<RagParams[]> {
    const problems = passes.flatMap(passStyleProblems);
    if (problems.length) throw new Refusal(`That cannot be painted: ${problems[0]}.`);
    if (!passes.some((p) => p.loras || p.HB_lora_list || p.Repainting_loras)) return passes;
    const dir = this.config.model.loraDir;
    try {
      return await pinStyles(passes, dir ? { loraDir: dir } : {});
    } catch (e) {
      if (e instanceof StyleError) throw styleRefusal(e);
      throw e;
    }
  }

  /**
   * The chain of versions from the first generation of the conversation to `g`, each with its picture when its
   * files still exist. A deleted record ends the chain early (`truncated`); deleted files leave a version
   * without a picture (`missing`).
   */
  async history(g: Generation): Promise<History> {
    const chain = this.store.lineage(g.id).reverse();
    const truncated = chain[0]?.parentId != null;
    const versions = await Promise.all(
      chain.map(async (v, i): Promise<Version> => {
        const painted = v.status === 'done' || v.status === 'layout';
        // A damaged image shows as a missing one (a grey tile), never as a failure of the whole picture.
        const png =
          (await readPicture(v.artifacts['image.png'])) ??
          (v.status === 'layout' || !v.artifacts['image.png']
            ? await readPicture(v.artifacts['layout.png'])
            : undefined);
        return { generation: v, number: i + 1, label: versionLabel(v), png, missing: painted && !png };
      }),
    );
    return { versions, truncated };
  }

  noModelText(): string {
    if (this.painting.mode === 'failed')
      return `The image model failed to load (${this.painting.reason ?? 'unknown reason'}), so I can only plan layouts right now. The bot's operator can see the details in its log.`;
    return 'No image model is configured on this bot (MODEL_DIR is not set), so I can only plan and show layouts. The bot’s operator can set MODEL_DIR to a FLUX.1 folder to turn painting on.';
  }
}
