/**
 * The styles in LORA_DIR: every `.safetensors` file directly in the folder is a style named by its file's stem
 * (`watercolor.safetensors` → "watercolor"). Browsing reads only each file's safetensors header (for the trigger
 * words and base model in its metadata); a style's SHA-256 is computed once per file version. Both are remembered
 * by path, size and modification time, so listing a folder of 50 LoRAs again (every autocomplete keystroke) reads
 * nothing but the directory.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../config/errors.ts';
import { SafetensorsFile } from '../weights/safetensors.ts';
import { refuseForeign } from './files/detect.ts';
import { loraMeta } from './meta.ts';
import type { LoraMeta } from './types.ts';

export interface StyleInfo {
  /** The file's stem: what users type. */
  name: string;
  /** Absolute path of the file. */
  path: string;
  /** SHA-256 of the whole file, lowercase hex. */
  sha256: string;
  sizeBytes: number;
  meta: LoraMeta;
}

/** A style name that LORA_DIR does not have, a LORA_DIR that cannot be read, or a file that is not a LoRA. */
export class StyleError extends UserError {
  constructor(
    message: string,
    /** The names the folder does have (for suggestions). */
    readonly known: string[] = [],
    /**
     * The name is not in the folder (the user's mistake, said to the user); otherwise the folder or a file is the
     * operator's problem, whose message names server paths.
     */
    readonly unknownName = false,
  ) {
    super(message);
    this.name = 'StyleError';
  }
}

const EXT = '.safetensors';

/** What a style's header says, without its hash: enough to list and suggest styles. */
export type StyleSummary = Omit<StyleInfo, 'sha256'>;

/** Per file version (path, size, modification time): its summary, and its hash once computed (or in progress). */
interface Known {
  size: number;
  mtimeMs: number;
  summary: StyleSummary;
  sha256?: Promise<string>;
}
const known = new Map<string, Known>();

/** SHA-256 of a file, streamed (LoRAs run to hundreds of MB). */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function knownFile(file: string, name: string): Promise<Known> {
  const abs = path.resolve(file);
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    throw new StyleError(`style "${name}": cannot read ${abs} (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  const hit = known.get(abs);
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs && hit.summary.name === name) return hit;
  let metadata: Record<string, string>;
  try {
    const file = new SafetensorsFile(abs, path.basename(abs));
    metadata = file.metadata;
    // A LoRA for Stable Diffusion (or a DoRA) is refused when it is listed, not when a job reaches a worker.
    refuseForeign(path.basename(abs), file.names(), { shape: (k) => file.info(k).shape, metadata });
  } catch (e) {
    throw new StyleError(`style "${name}" is not a usable LoRA file: ${(e as Error).message}`);
  }
  const entry: Known = {
    size: st.size,
    mtimeMs: st.mtimeMs,
    summary: { name, path: abs, sizeBytes: st.size, meta: loraMeta(metadata) },
  };
  known.set(abs, entry);
  return entry;
}

/** One style file, its hash included: computed once per file version, shared by callers that ask meanwhile. */
export async function styleInfo(file: string, name = path.basename(file, EXT)): Promise<StyleInfo> {
  const entry = await knownFile(file, name);
  entry.sha256 ??= sha256File(entry.summary.path).catch((e: unknown) => {
    entry.sha256 = undefined;
    throw new StyleError(`style "${name}": cannot read ${entry.summary.path} (${(e as Error).message})`);
  });
  return { ...entry.summary, sha256: await entry.sha256 };
}

/** The `.safetensors` files of the folder by style name, sorted by name; nothing is read but the directory. */
async function styleFiles(dir: string): Promise<{ name: string; file: string }[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StyleError(
      `LORA_DIR (${dir}) cannot be read (${code ?? (e as Error).message}): set LORA_DIR to a folder of .safetensors LoRA files`,
    );
  }
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && e.name.toLowerCase().endsWith(EXT) && !e.name.startsWith('.'))
    .map((e) => ({ name: e.name.slice(0, -EXT.length), file: path.resolve(dir, e.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Every style in `dir`. A file that is not a readable safetensors file is left out (and named in `skipped`). */
export async function listStyles(dir: string, skipped: string[] = []): Promise<StyleInfo[]> {
  const out: StyleInfo[] = [];
  for (const f of await styleFiles(dir)) {
    try {
      out.push(await styleInfo(f.file, f.name));
    } catch (e) {
      skipped.push(`${path.basename(f.file)}: ${(e as Error).message}`);
    }
  }
  return out;
}

/**
 * Every style in `dir` from the headers alone, no file hashed: what /styles, autocomplete (3 s to answer) and the
 * planner need, fast even while new files wait to be hashed.
 */
export async function browseStyles(dir: string, skipped: string[] = []): Promise<StyleSummary[]> {
  const out: StyleSummary[] = [];
  for (const f of await styleFiles(dir)) {
    try {
      out.push((await knownFile(f.file, f.name)).summary);
    } catch (e) {
      skipped.push(`${path.basename(f.file)}: ${(e as Error).message}`);
    }
  }
  return out;
}

/** The names of the styles in `dir` (no file is read). */
export async function styleNames(dir: string): Promise<string[]> {
  return (await styleFiles(dir)).map((f) => f.name);
}

/** `names` as a user reads them in a message: at most 20, then a count. */
export function listNames(names: string[]): string {
  if (!names.length) return '(none)';
  const shown = names.slice(0, 20).join(', ');
  return names.length > 20 ? `${shown} and ${names.length - 20} more` : shown;
}

/**
 * The style called `name` in `dir`: its exact stem, else the only one equal to it ignoring case. Unknown names
 * are an error that lists the styles the folder has.
 */
export async function findStyle(dir: string, name: string): Promise<StyleInfo> {
  const files = await styleFiles(dir);
  const wanted = name.trim();
  const exact = files.find((f) => f.name === wanted);
  const folded = files.filter((f) => f.name.toLowerCase() === wanted.toLowerCase());
  const hit = exact ?? (folded.length === 1 ? folded[0] : undefined);
  const names = files.map((f) => f.name);
  if (!hit)
    throw new StyleError(
      names.length
        ? `there is no style "${wanted}"; the styles are: ${listNames(names)}`
        : `there is no style "${wanted}": the style folder (LORA_DIR) has no .safetensors files`,
      names,
      true,
    );
  return styleInfo(hit.file, hit.name);
}
