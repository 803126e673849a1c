import { UserError } from '../../config/errors.ts';
import { ClipTextEncoder } from '../graphs/clip-encoder.ts';
import { clipTextConfig } from '../graphs/clip.ts';
import type { HostTensor } from '../weights/safetensors.ts';
import { requireInput } from './io.ts';
import type { DebugComponent } from './component.ts';

/** Token ids from a debug input of any integer-valued dtype, as int64, with their shape checked. */
export function idsInput(
  inputs: Record<string, HostTensor>,
  component: string,
  lengths: number[],
): { ids: BigInt64Array; batch: number; length: number } {
  const t = requireInput(inputs, 'input_ids', component);
  const [batch, length] = t.shape;
  if (t.shape.length !== 2 || batch === undefined || length === undefined || !lengths.includes(length)) {
    throw new UserError(
      `debug ${component}: input_ids has shape [${t.shape.join(',')}], expected [B, ${lengths.join(' or ')}]`,
      2,
    );
  }
  let ids: BigInt64Array;
  if (t.data instanceof BigInt64Array) ids = t.data;
  else if (t.dtype === 'float16' || t.dtype === 'bfloat16')
    throw new UserError(`debug ${component}: input_ids must be an integer or float32 tensor (got ${t.dtype})`, 2);
  else ids = BigInt64Array.from(t.data as ArrayLike<number>, (x) => BigInt(Math.round(x)));
  return { ids, batch, length };
}

/** debug clip: CLIPTextModel(input_ids) → last_hidden_state, pooler_output. */
export const component: DebugComponent = {
  summary: 'CLIP text encoder: input_ids (int64, [B, 77]) → last_hidden_state, pooler_output',
  required: ['inputs', 'out'],
  async run(ctx) {
    const c = ctx.checkpoint().component('text_encoder');
    const { ids, batch } = idsInput(ctx.inputs, 'clip', [clipTextConfig(c).positions]);
    const enc = await ClipTextEncoder.create(c, ctx.runtime);
    ctx.note(`clip: session created in ${enc.createMs.toFixed(0)} ms`);
    const t0 = performance.now();
    const out = await enc.encode(ids);
    ctx.note(`run: ${(performance.now() - t0).toFixed(0)} ms`);
    await enc.release();
    return {
      tensors: {
        last_hidden_state: { dtype: 'float32', shape: [batch, enc.length, enc.hidden], data: out.lastHiddenState },
        pooler_output: { dtype: 'float32', shape: [batch, enc.hidden], data: out.pooled },
      },
    };
  },
};
