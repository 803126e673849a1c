/**
 * `--lora <file.safetensors>[:<scale>]` (repeatable): styles for the whole picture, on top of any a Scene JSON
 * names. Every style of the passes, from either source, is resolved before the model loads: a name through
 * LORA_DIR, a path relative to the Scene or parameters file (for --lora: to the working directory), each file's
 * hash recorded, so that a missing or unreadable file is said at once and a saved generation pins its files.
 */
import path from 'node:path';
import { UserError } from '../config/errors.ts';
import { LORA_LIMITS, type LoraRef, type RagParams } from '../rag/params.ts';
import { MissingStyleError, passStyleProblems, resolveStyles, styleResolver } from '../paint/styles.ts';
import { browseStyles, StyleError } from '../engine/lora/catalog.ts';
import type { Config } from '../config/config.ts';
import { styleChoiceOf, type StyleChoice } from '../planner/styles.ts';

export const LORA_USAGE = '--lora <file.safetensors | style name>[:<scale>] (repeatable; scale −4…4, default 1)';

/** Parses the --lora values; the scale is whatever follows the last `:` when it is a number. */
export function parseLoraFlags(values: readonly string[] | undefined): LoraRef[] {
  const out: LoraRef[] = [];
  for (const raw of values ?? []) {
    const colon = raw.lastIndexOf(':');
    const tail = colon >= 0 ? raw.slice(colon + 1).trim() : '';
    // "C:\styles\x.safetensors" has a colon that is no scale: only a number after the last colon is one.
    const scaled = colon > 0 && /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(tail);
    const name = (scaled ? raw.slice(0, colon) : raw).trim();
    const scale = scaled ? Number(tail) : 1;
    if (!name) throw new UserError(`--lora "${raw}" names no file: ${LORA_USAGE}`, 2);
    if (!scaled && /\.safetensors$/i.test(raw.slice(0, colon)))
      throw new UserError(`--lora "${raw}": the scale "${tail}" is not a number (${LORA_USAGE})`, 2);
    if (scale < LORA_LIMITS.minScale || scale > LORA_LIMITS.maxScale)
      throw new UserError(
        `--lora ${name}: scale ${scale} is outside ${LORA_LIMITS.minScale}…${LORA_LIMITS.maxScale}; a LoRA is usually used between 0.5 and 1.2`,
        2,
      );
    // A path is made absolute here (relative to where the command runs); a bare name is looked up in LORA_DIR.
    const ref = /\.safetensors$/i.test(name) || /[\\/]/.test(name) ? path.resolve(name) : name;
    if (out.some((o) => o.name === ref)) throw new UserError(`--lora ${name} is given twice: give it once`, 2);
    out.push({ name: ref, scale });
  }
  return out;
}

/**
 * The pass with the --lora styles added to its global ones (a --lora replaces a global style of the same file),
 * every style resolved to an absolute path with its hash. Errors name the file and say what to do.
 */
export async function passWithStyles(
  pass: RagParams,
  cli: LoraRef[],
  o: { loraDir?: string; baseDir?: string },
): Promise<RagParams> {
  const global = [...(pass.loras ?? []).filter((l) => !cli.some((c) => c.name === l.name)), ...cli];
  const withCli: RagParams = { ...pass, ...(global.length ? { loras: global } : {}) };
  const problems = passStyleProblems(withCli);
  if (problems.length) throw new UserError(problems.join('; '), 2);
  if (!withCli.loras && !withCli.HB_lora_list && !withCli.Repainting_loras) return withCli;
  try {
    const [resolved] = await resolveStyles([withCli], { ...o, who: 'cli' });
    return resolved!;
  } catch (e) {
    if (e instanceof StyleError || e instanceof MissingStyleError) throw new UserError(e.message, 2);
    throw e;
  }
}

/** The --lora styles of a plain --prompt image, each resolved to an absolute path with its hash. */
export async function resolvedLoraFlags(cli: LoraRef[], o: { loraDir?: string }): Promise<LoraRef[]> {
  const resolve = styleResolver({ ...o, who: 'cli' });
  try {
    return await Promise.all(cli.map(resolve));
  } catch (e) {
    if (e instanceof StyleError || e instanceof MissingStyleError) throw new UserError(e.message, 2);
    throw e;
  }
}

/** The styles of LORA_DIR as the planner and editor take them (none without LORA_DIR). */
export async function plannerStyles(config: Config): Promise<StyleChoice[]> {
  const dir = config.model.loraDir;
  if (!dir) return [];
  try {
    return (await browseStyles(dir)).map(styleChoiceOf);
  } catch (e) {
    if (e instanceof StyleError) throw new UserError(e.message, 2);
    throw e;
  }
}
