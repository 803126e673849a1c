import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../../config/errors.ts';
import { PrecompiledCharsmap } from './charsmap.ts';

/**
 * T5 v1.1's SentencePiece-Unigram tokenizer from `tokenizer.json` (FLUX's `tokenizer_2/`), run with
 * @huggingface/tokenizers. One substitution: the library approximates the `Precompiled` normaliser with
 * Node's NFKC, which differs from sentencepiece's `nmt_nfkc` charsmap on exactly 172 single code points,
 * all compatibility characters newer than the charsmap (Unicode 13–16): U+32FF, U+A7F1–A7F4, U+AB69,
 * U+10781–10785, U+10787–107B0, U+107B2–107BA, U+1CCD6–1CCF9, U+1E030–1E06D, U+1F16C, U+1F23B,
 * U+1FBF0–1FBF9 (NFKC folds them, e.g. U+1FBF5 → "5"; the charsmap keeps them, so T5 sees <unk>).
 * None of the 29 golden prompts contains one (the library alone also matches all 29). We apply the
 * real charsmap ourselves (charsmap.ts) and hand the library the rest of the pipeline.
 */
export interface T5Tokenizer {
  readonly padId: number;
  readonly eosId: number;
  /** Unigram ids of the text, without EOS. */
  encode(text: string): number[];
  /** FLUX framing: ids[:length-1] + [EOS], padded with the pad id to `length` (512 dev, 256 schnell). */
  inputIds(text: string, length: number): number[];
}

/** T5 sequence length FluxPipeline uses: max_sequence_length 512 for FLUX.1-dev, 256 for FLUX.1-schnell. */
export const T5_LENGTH = { dev: 512, schnell: 256 } as const;

interface NormalizerJson {
  type: string;
  normalizers?: NormalizerJson[];
  precompiled_charsmap?: string | null;
}

/** Removes every Precompiled step from the normaliser config and returns its charsmap. */
function takePrecompiled(normalizer: NormalizerJson | null | undefined): {
  rest: NormalizerJson | null;
  charsmap?: string;
} {
  if (!normalizer) return { rest: null };
  if (normalizer.type === 'Precompiled') {
    return normalizer.precompiled_charsmap ? { rest: null, charsmap: normalizer.precompiled_charsmap } : { rest: null };
  }
  if (normalizer.type === 'Sequence' && normalizer.normalizers) {
    const kept = normalizer.normalizers.filter((n) => n.type !== 'Precompiled');
    const pc = normalizer.normalizers.find((n) => n.type === 'Precompiled');
    return {
      rest: kept.length > 0 ? { ...normalizer, normalizers: kept } : null,
      ...(pc?.precompiled_charsmap ? { charsmap: pc.precompiled_charsmap } : {}),
    };
  }
  return { rest: normalizer };
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`cannot read ${file}: ${(e as Error).message}`);
  }
}

export function loadT5Tokenizer(dir: string): T5Tokenizer {
  const jsonFile = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(jsonFile)) {
    const spiece = fs.existsSync(path.join(dir, 'spiece.model'));
    throw new UserError(
      `T5 tokenizer: ${jsonFile} is missing${spiece ? ' (spiece.model alone is not supported)' : ''}. ` +
        "The checkpoint's tokenizer_2/ folder must hold tokenizer.json, as black-forest-labs/FLUX.1-dev ships it.",
    );
  }
  const json = readJson(jsonFile);
  const configFile = path.join(dir, 'tokenizer_config.json');
  const config = fs.existsSync(configFile) ? readJson(configFile) : {};

  const { rest, charsmap } = takePrecompiled(json.normalizer as NormalizerJson | null | undefined);
  const map = charsmap ? PrecompiledCharsmap.fromBase64(charsmap) : undefined;
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer({ ...json, normalizer: rest }, config);
  } catch (e) {
    throw new UserError(`T5 tokenizer: ${jsonFile} could not be loaded: ${(e as Error).message}`);
  }
  const idOf = (token: string): number => {
    const id = tokenizer.token_to_id(token);
    if (id === undefined) throw new UserError(`T5 tokenizer: ${jsonFile} has no "${token}" token`);
    return id;
  };
  const eosId = idOf('</s>');
  const padId = idOf('<pad>');

  const encode = (text: string): number[] =>
    tokenizer.encode(map ? map.normalize(text) : text, { add_special_tokens: false }).ids;
  return {
    padId,
    eosId,
    encode,
    inputIds(text, length) {
      if (!Number.isInteger(length) || length < 1)
        throw new Error(`T5 length must be a positive integer (got ${length})`);
      const ids = encode(text).slice(0, length - 1);
      ids.push(eosId);
      while (ids.length < length) ids.push(padId);
      return ids;
    },
  };
}
