import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../config/errors.ts';
import { htmlUnescape } from './html-unescape.ts';

/**
 * CLIP's byte-level BPE, built from `vocab.json` + `merges.txt` (the files FLUX's `tokenizer/` folder
 * ships). It reproduces openai/CLIP's `SimpleTokenizer.encode`, the reference for the golden ids:
 * html-unescape twice, strip, collapse whitespace, lowercase, split with CLIP's word regex, map UTF-8
 * bytes to printable characters, BPE with `</w>` on the last symbol of each word.
 *
 * Not reproduced: ftfy's `fix_text` (the reference has none either; it only changes mojibake). FLUX's
 * transformers `CLIPTokenizer` differs from this reference in two known ways (fixtures/README.md §2): it
 * does not html-unescape, and without ftfy installed it splits CJK characters into separate words.
 */
export interface ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly maxLength: number;
  /** BPE ids of the text, without BOS/EOS. */
  encode(text: string): number[];
  /** BPE pieces (vocabulary strings) of the text, for debugging. */
  pieces(text: string): string[];
  /** FLUX framing: [BOS] + ids + [EOS], cut to `length` with EOS last, padded with the pad id. */
  inputIds(text: string, length?: number): number[];
}

// Python's str.isspace() set, which `re`'s \s and str.strip() use (JS's \s differs: it lacks
// U+001C..U+001F and U+0085 and adds U+FEFF).
const PY_SPACE =
  '\\t\\n\\v\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'gu');
const EDGE_SPACE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');
// openai/CLIP's word pattern (case-insensitive; the text is already lowercase).
const WORD = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${PY_SPACE}\\p{L}\\p{N}]+`,
  'giu',
);

/** GPT-2's reversible byte → printable-character table. */
function byteEncoder(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = printable.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return table;
}

export function cleanClipText(text: string): string {
  let t = htmlUnescape(htmlUnescape(text)).replace(EDGE_SPACE, '');
  t = t.replace(SPACE_RUN, ' ').replace(EDGE_SPACE, '');
  return t.toLowerCase();
}

class Bpe implements ClipTokenizer {
  private readonly bytes = byteEncoder();
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    merges: string[],
    readonly bosId: number,
    readonly eosId: number,
    readonly padId: number,
    readonly maxLength: number,
    specials: string[],
  ) {
    merges.forEach((m, i) => this.ranks.set(m, i));
    for (const s of specials) this.cache.set(s, [s]);
  }

  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < word.length;) {
        if (word[i] === first && word[i + 1] === second && i < word.length - 1) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]!);
          i += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size < 50_000) this.cache.set(token, word);
    return word;
  }

  pieces(text: string): string[] {
    const out: string[] = [];
    for (const m of cleanClipText(text).matchAll(WORD)) {
      const encoded = Array.from(Buffer.from(m[0], 'utf8'), (b) => this.bytes[b]!).join('');
      out.push(...this.bpe(encoded));
    }
    return out;
  }

  encode(text: string): number[] {
    return this.pieces(text).map((p) => {
      const id = this.vocab.get(p);
      if (id === undefined)
        throw new Error(
          `CLIP BPE produced "${p}", which vocab.json does not contain (vocab.json and merges.txt do not belong together)`,
        );
      return id;
    });
  }

  inputIds(text: string, length = this.maxLength): number[] {
    const ids = [this.bosId, ...this.encode(text), this.eosId];
    if (ids.length > length) {
      ids.length = length;
      ids[length - 1] = this.eosId;
    }
    while (ids.length < length) ids.push(this.padId);
    return ids;
  }
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

/** A token field of tokenizer_config.json / special_tokens_map.json: a string or {content}. */
function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/**
 * Loads the CLIP tokenizer from a folder with vocab.json and merges.txt; special tokens and the length
 * come from tokenizer_config.json / special_tokens_map.json when present (FLUX: BOS <|startoftext|>,
 * EOS and pad <|endoftext|>, 77).
 */
export function loadClipTokenizer(dir: string): ClipTokenizer {
  const vocabFile = path.join(dir, 'vocab.json');
  const mergesFile = path.join(dir, 'merges.txt');
  for (const f of [vocabFile, mergesFile]) {
    if (!fs.existsSync(f)) {
      throw new UserError(
        `CLIP tokenizer: ${f} is missing. The checkpoint's tokenizer/ folder must hold vocab.json and merges.txt (as in black-forest-labs/FLUX.1-dev).`,
      );
    }
  }
  const vocabJson = readJson(vocabFile);
  if (!vocabJson || typeof vocabJson !== 'object')
    throw new UserError(`${vocabFile} is not a JSON object of token → id`);
  const vocab = new Map<string, number>(Object.entries(vocabJson as Record<string, number>));
  const lines = fs.readFileSync(mergesFile, 'utf8').split('\n');
  const merges = lines
    .filter((l, i) => l.trim() !== '' && !(i === 0 && l.startsWith('#version')))
    .map((l) => l.replace(/\r$/, ''));

  const config: Record<string, unknown> = {};
  for (const f of ['special_tokens_map.json', 'tokenizer_config.json']) {
    const p = path.join(dir, f);
    if (fs.existsSync(p)) Object.assign(config, readJson(p));
  }
  const idOf = (field: string, fallback: string): number => {
    const name = tokenName(config[field]) ?? fallback;
    const id = vocab.get(name);
    if (id === undefined) throw new UserError(`CLIP tokenizer: ${field} "${name}" is not in ${vocabFile}`);
    return id;
  };
  const bos = tokenName(config.bos_token) ?? '<|startoftext|>';
  const eos = tokenName(config.eos_token) ?? '<|endoftext|>';
  const maxLength =
    typeof config.model_max_length === 'number' && config.model_max_length <= 1024 ? config.model_max_length : 77;
  return new Bpe(vocab, merges, idOf('bos_token', bos), idOf('eos_token', eos), idOf('pad_token', eos), maxLength, [
    bos,
    eos,
  ]);
}
