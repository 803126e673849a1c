import { createSession, graphFormFor, ort, type RuntimeOptions } from '../runtime/session.ts';
import { buildClipTextGraph, clipTextConfig } from './clip.ts';
import type { ComponentInput, TextGraphOptions } from './clip-config.ts';

/** Token ids for a batch: one row per prompt, or a flat int64 array of B·L values. */
export type IdBatch = readonly (readonly number[])[] | BigInt64Array;

export function idTensor(ids: IdBatch, length: number): ort.Tensor {
  if (ids instanceof BigInt64Array) {
    if (ids.length === 0 || ids.length % length !== 0)
      throw new Error(`token ids: ${ids.length} values are not rows of ${length}`);
    return new ort.Tensor('int64', ids, [ids.length / length, length]);
  }
  const flat = new BigInt64Array(ids.length * length);
  ids.forEach((row, b) => {
    if (row.length !== length)
      throw new Error(`token ids: row ${b} has ${row.length} ids, the encoder takes exactly ${length}`);
    row.forEach((id, i) => (flat[b * length + i] = BigInt(id)));
  });
  return new ort.Tensor('int64', flat, [ids.length, length]);
}

/** Outputs are float32, batch first. */
export interface ClipTextOutput {
  /** [B, 77, hidden] */
  lastHiddenState: Float32Array;
  /** [B, hidden]: FLUX's pooled_prompt_embeds. */
  pooled: Float32Array;
  batch: number;
  hidden: number;
}

/** The CLIP text encoder as a ready ORT session. */
export class ClipTextEncoder {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly length: number,
    readonly hidden: number,
    readonly createMs: number,
  ) {}

  static async create(
    component: ComponentInput,
    runtime: RuntimeOptions,
    opts: TextGraphOptions = {},
  ): Promise<ClipTextEncoder> {
    const cfg = clipTextConfig(component);
    const { session, createMs } = await createSession(
      buildClipTextGraph(component, { linear: graphFormFor(runtime.executionProvider).linear, ...opts }),
      runtime,
    );
    return new ClipTextEncoder(session, cfg.positions, cfg.hidden, createMs);
  }

  /** Runs the encoder on framed ids (ClipTokenizer.inputIds), [B, 77]. */
  async encode(ids: IdBatch): Promise<ClipTextOutput> {
    const input = idTensor(ids, this.length);
    const out = await this.session.run({ input_ids: input });
    return {
      lastHiddenState: out.last_hidden_state!.data as Float32Array,
      pooled: out.pooler_output!.data as Float32Array,
      batch: input.dims[0]!,
      hidden: this.hidden,
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
