import { createSession, graphFormFor, type ort, type RuntimeOptions } from '../runtime/session.ts';
import { idTensor, type IdBatch } from './clip-encoder.ts';
import type { ComponentInput, TextGraphOptions } from './clip-config.ts';
import { buildT5EncoderGraph, t5EncoderConfig } from './t5.ts';

export interface T5Output {
  /** [B, length, d_model]: FLUX's prompt_embeds. */
  lastHiddenState: Float32Array;
  batch: number;
  length: number;
  dModel: number;
}

/**
 * The T5 encoder as ORT sessions, one per sequence length (the bucket table makes the length part of
 * the graph); a session is built the first time a length is used.
 */
export class T5TextEncoder {
  private readonly sessions = new Map<number, Promise<{ session: ort.InferenceSession; createMs: number }>>();
  readonly dModel: number;

  constructor(
    private readonly component: ComponentInput,
    private readonly runtime: RuntimeOptions,
    private readonly opts: TextGraphOptions = {},
  ) {
    this.dModel = t5EncoderConfig(component).dModel;
  }

  /** Creates (or returns) the session for `length`; resolves to its creation time in ms. */
  async prepare(length: number): Promise<number> {
    let s = this.sessions.get(length);
    if (!s) {
      s = createSession(
        buildT5EncoderGraph(this.component, {
          linear: graphFormFor(this.runtime.executionProvider).linear,
          ...this.opts,
          length,
        }),
        this.runtime,
      );
      this.sessions.set(length, s);
      s.catch(() => this.sessions.delete(length));
    }
    return (await s).createMs;
  }

  /** Runs the encoder on framed ids (T5Tokenizer.inputIds) of `length` tokens per row. */
  async encode(ids: IdBatch, length: number): Promise<T5Output> {
    await this.prepare(length);
    const { session } = await this.sessions.get(length)!;
    const input = idTensor(ids, length);
    const out = await session.run({ input_ids: input });
    return {
      lastHiddenState: out.last_hidden_state!.data as Float32Array,
      batch: input.dims[0]!,
      length,
      dModel: this.dModel,
    };
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).session.release();
  }
}
