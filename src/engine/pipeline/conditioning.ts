import type { FluxCheckpoint } from '../checkpoint/types.ts';
import { ClipTextEncoder } from '../graphs/clip-encoder.ts';
import { t5ComputeType } from '../graphs/t5.ts';
import { T5TextEncoder } from '../graphs/t5-encoder.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { loadClipTokenizer, type ClipTokenizer } from '../tokenizers/clip.ts';
import { loadT5Tokenizer, T5_LENGTH, type T5Tokenizer } from '../tokenizers/t5.ts';

/**
 * Text conditioning by prompt, as FluxPipeline computes it: T5 `last_hidden_state` of the prompt padded to the
 * text length (no attention mask), and CLIP's pooled output. RAG encodes the global prompt (T5 + CLIP), each
 * hard-binding prompt (T5 + CLIP), each BREAK segment of the SR prompt verbatim (T5 only) and the repaint
 * prompts (RAG-SPEC.md §1.3).
 */
export interface Conditioning {
  /** T5 sequence length (512 for FLUX.1-dev, 256 for schnell unless overridden). */
  readonly textLength: number;
  /** T5 embeddings [textLength, joint_dim] of a text. */
  t5(text: string): Promise<Float32Array>;
  /** CLIP pooled embedding [pooled_dim] of a text. */
  clip(text: string): Promise<Float32Array>;
}

/** A small LRU of promises by key (a prompt is encoded once however often it is asked for). */
class PromiseCache<T> {
  private readonly map = new Map<string, Promise<T>>();
  constructor(private readonly capacity: number) {}

  get(key: string, make: () => Promise<T>): Promise<T> {
    let hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
    } else {
      hit = make();
      hit.catch(() => this.map.delete(key));
    }
    this.map.set(key, hit);
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
    return hit;
  }

  get size(): number {
    return this.map.size;
  }
}

export interface TextEncoderOptions {
  /** T5 length; default by variant (512 dev, 256 schnell). */
  textLength?: number;
  /** Prompts kept per encoder (default 64). */
  cacheSize?: number;
}

/** The checkpoint's own tokenizers and text encoders, sessions opened on first use, embeddings cached by prompt. */
export class TextEncoders implements Conditioning {
  readonly textLength: number;
  private clipTok?: ClipTokenizer;
  private t5Tok?: T5Tokenizer;
  private clipEnc?: Promise<ClipTextEncoder>;
  private t5Enc?: T5TextEncoder;
  private readonly t5Cache: PromiseCache<Float32Array>;
  private readonly clipCache: PromiseCache<Float32Array>;
  /** Encoder runs so far (cache misses), for tests and logs. */
  readonly runs = { t5: 0, clip: 0 };

  constructor(
    private readonly ck: FluxCheckpoint,
    private readonly runtime: RuntimeOptions,
    opts: TextEncoderOptions = {},
  ) {
    this.textLength = opts.textLength ?? T5_LENGTH[ck.variant];
    this.t5Cache = new PromiseCache(opts.cacheSize ?? 64);
    this.clipCache = new PromiseCache(opts.cacheSize ?? 64);
  }

  t5(text: string): Promise<Float32Array> {
    return this.t5Cache.get(text, async () => {
      this.t5Tok ??= loadT5Tokenizer(this.ck.assetFolder('tokenizer_2'));
      // bf16 on CUDA, clamped fp16 on WebGPU, fp32 on CPU; the embeddings come back as fp32 either way.
      this.t5Enc ??= new T5TextEncoder(this.ck.component('text_encoder_2'), this.runtime, {
        computeType: t5ComputeType(this.runtime.executionProvider),
      });
      const ids = this.t5Tok.inputIds(text, this.textLength);
      this.runs.t5++;
      return (await this.t5Enc.encode([ids], this.textLength)).lastHiddenState;
    });
  }

  clip(text: string): Promise<Float32Array> {
    return this.clipCache.get(text, async () => {
      this.clipTok ??= loadClipTokenizer(this.ck.assetFolder('tokenizer'));
      this.clipEnc ??= ClipTextEncoder.create(this.ck.component('text_encoder'), this.runtime);
      const enc = await this.clipEnc;
      this.runs.clip++;
      return (await enc.encode([this.clipTok.inputIds(text, enc.length)])).pooled;
    });
  }

  /** Closes the encoder sessions (the cached embeddings stay). */
  async release(): Promise<void> {
    const clip = this.clipEnc;
    const t5 = this.t5Enc;
    this.clipEnc = undefined;
    this.t5Enc = undefined;
    if (clip) await (await clip).release();
    if (t5) await t5.release();
  }
}

/**
 * Conditioning given as tensors by prompt (golden files, `debug pipeline`): a prompt that is not in the table
 * is an error naming it and what the table has.
 */
export class TableConditioning implements Conditioning {
  constructor(
    readonly textLength: number,
    private readonly t5Table: ReadonlyMap<string, Float32Array>,
    private readonly clipTable: ReadonlyMap<string, Float32Array>,
  ) {}

  private look(table: ReadonlyMap<string, Float32Array>, what: string, text: string): Promise<Float32Array> {
    const hit = table.get(text);
    if (hit) return Promise.resolve(hit);
    const have = [...table.keys()].map((k) => JSON.stringify(k)).join(', ');
    return Promise.reject(
      new Error(`no ${what} embedding given for ${JSON.stringify(text)} (have: ${have || 'none'})`),
    );
  }

  t5(text: string): Promise<Float32Array> {
    return this.look(this.t5Table, 'T5', text);
  }

  clip(text: string): Promise<Float32Array> {
    return this.look(this.clipTable, 'CLIP pooled', text);
  }
}
