/**
 * Styles (LoRAs) in paint passes: from what a user named to the file a painter loads.
 *
 *   request time (bot, CLI)  pinStyles:     name → name + the SHA-256 of the file in this machine's LORA_DIR
 *   paint time (worker, CLI) resolveStyles: name → absolute path in the painter's own LORA_DIR, its hash checked
 *
 * The stored passes keep names and hashes (what was asked for, machine-independent); only the job handed to the
 * engine carries paths. A name that is itself a `.safetensors` path (CLI, Scene JSON) is used as that file.
 */
import path from 'node:path';
import { UserError } from '../config/errors.ts';
import { findStyle, listNames, styleInfo, StyleError, styleNames, type StyleInfo } from '../engine/lora/catalog.ts';
import { LORA_LIMITS, styleSlots, type LoraRef, type RagParams } from '../rag/params.ts';

/** Whether a style name is a file path rather than a name in LORA_DIR. */
export function isStylePath(name: string): boolean {
  return /\.safetensors$/i.test(name) || name.includes('/') || name.includes('\\');
}

/** The pass with every style reference (global, per box, repaint) replaced by `f` of it. */
export async function mapPassStyles(pass: RagParams, f: (ref: LoraRef) => Promise<LoraRef>): Promise<RagParams> {
  const list = async (refs: LoraRef[]) => Promise.all(refs.map(f));
  const out: RagParams = { ...pass };
  if (pass.loras) out.loras = await list(pass.loras);
  if (pass.HB_lora_list) out.HB_lora_list = await Promise.all(pass.HB_lora_list.map(list));
  if (pass.Repainting_loras) out.Repainting_loras = await list(pass.Repainting_loras);
  return out;
}

/** Every style reference of a pass. */
export function passStyles(pass: RagParams): LoraRef[] {
  return [...(pass.loras ?? []), ...(pass.HB_lora_list ?? []).flat(), ...(pass.Repainting_loras ?? [])];
}

/** The styles a pass uses, one per name (the first scale met), for showing "painted with". */
export function passStyleNames(passes: RagParams[]): string[] {
  return [...new Set(passes.flatMap(passStyles).map((s) => s.name))];
}

/**
 * What the painter cannot take, checked before anything is queued or loaded: more styles than the step graph has
 * slots for, or a per-box list that does not match the boxes.
 */
export function passStyleProblems(pass: RagParams): string[] {
  const out: string[] = [];
  const slots = styleSlots(passStyles(pass));
  if (slots > LORA_LIMITS.maxLoras)
    out.push(
      `the picture uses ${slots} styles (a style at two scales counts twice); at most ${LORA_LIMITS.maxLoras} fit in one painting`,
    );
  if (pass.HB_lora_list && pass.HB_lora_list.length !== pass.HB_prompt_list.length)
    out.push(
      `HB_lora_list has ${pass.HB_lora_list.length} entries but there are ${pass.HB_prompt_list.length} boxes: give one list per box`,
    );
  return out;
}

export interface StyleSource {
  /** LORA_DIR of this machine; unset: only paths work. */
  loraDir?: string;
  /** Relative paths in a pass are relative to this folder (a Scene or parameters file's); default: the cwd. */
  baseDir?: string;
}

export interface ResolveOptions extends StyleSource {
  /** Whose message: a worker's (copy the file to every worker) or the command line's. */
  who?: 'worker' | 'cli';
}

async function lookUp(name: string, o: StyleSource, who: string): Promise<StyleInfo> {
  if (isStylePath(name)) return styleInfo(path.resolve(o.baseDir ?? '.', name));
  if (!o.loraDir)
    throw new StyleError(
      `${who} has no style folder (LORA_DIR is not set), so it cannot use the style "${name}": set LORA_DIR to the folder of .safetensors styles`,
    );
  return findStyle(o.loraDir, name);
}

/**
 * Request time: each style is looked up in this machine's LORA_DIR (or as a path) and its hash pinned. An unknown
 * name is a StyleError listing the styles there are. A reference that already has a hash (a parent's, replayed by
 * a repaint) keeps it.
 */
export async function pinStyles(passes: RagParams[], o: StyleSource): Promise<RagParams[]> {
  return Promise.all(
    passes.map((p) =>
      mapPassStyles(p, async (ref) => {
        if (ref.sha256) return ref;
        const info = await lookUp(ref.name, o, 'this bot');
        return { ...ref, sha256: info.sha256 };
      }),
    ),
  );
}

/** A worker cannot paint a job's style: it lacks the file, or its file is not the one the job was made with. */
export class MissingStyleError extends UserError {
  constructor(
    message: string,
    readonly style: string,
  ) {
    super(message);
    this.name = 'MissingStyleError';
  }
}

/**
 * Paint time: every style becomes the absolute path of this machine's file, its hash checked against the pinned
 * one. A style this worker lacks, or has in another version, fails the job naming the style: a picture is never
 * painted without a style it asked for.
 */
export async function resolveStyles(passes: RagParams[], o: ResolveOptions): Promise<RagParams[]> {
  const resolve = styleResolver(o);
  return Promise.all(passes.map((p) => mapPassStyles(p, resolve)));
}

/** Resolves one style reference to its absolute path and hash (each name looked up once per resolver). */
export function styleResolver(o: ResolveOptions): (ref: LoraRef) => Promise<LoraRef> {
  const cli = o.who === 'cli';
  const seen = new Map<string, Promise<StyleInfo>>();
  const info = (name: string) => {
    let p = seen.get(name);
    if (!p) seen.set(name, (p = lookUp(name, o, cli ? 'scenewright' : 'this worker')));
    return p;
  };
  return async (ref) => {
    let found: StyleInfo;
    try {
      found = await info(ref.name);
    } catch (e) {
      if (!(e instanceof StyleError)) throw e;
      if (cli) throw new MissingStyleError(e.message, ref.name);
      // A file that is there but unusable (truncated, not a LoRA) is said as it is, not as a missing file.
      if (!e.unknownName && !isStylePath(ref.name))
        throw new MissingStyleError(
          `this worker cannot paint the style "${ref.name}": ${e.message}. Copy a good file into every worker's LORA_DIR`,
          ref.name,
        );
      const where = isStylePath(ref.name)
        ? `the file ${ref.name} cannot be read here`
        : o.loraDir
          ? `its LORA_DIR (${o.loraDir}) has no ${ref.name}.safetensors (it has: ${listNames(await styleNames(o.loraDir).catch(() => []))})`
          : 'LORA_DIR is not set';
      throw new MissingStyleError(
        `this worker cannot paint the style "${ref.name}": ${where}. Copy the same file into every worker's LORA_DIR`,
        ref.name,
      );
    }
    if (ref.sha256 && ref.sha256 !== found.sha256)
      throw new MissingStyleError(
        `${cli ? 'the' : "this worker's"} file for the style "${ref.name}" (${found.path}) differs from the one the request was made with (SHA-256 ${found.sha256.slice(0, 12)}… here, ${ref.sha256.slice(0, 12)}… expected): ${cli ? 'use the file the parameters were made with, or drop their sha256' : "copy the same file into every worker's LORA_DIR"}`,
        ref.name,
      );
    return { name: found.path, scale: ref.scale, sha256: found.sha256 };
  };
}
