import { T5TextEncoder } from '../graphs/t5-encoder.ts';
import { idsInput } from './clip.ts';
import type { DebugComponent } from './component.ts';

/** debug t5: T5EncoderModel(input_ids), no attention mask → last_hidden_state. */
export const component: DebugComponent = {
  summary: 'T5 encoder: input_ids (int64, [B, 512] or [B, 256]) → last_hidden_state',
  required: ['inputs', 'out'],
  async run(ctx) {
    const c = ctx.checkpoint().component('text_encoder_2');
    const { ids, batch, length } = idsInput(ctx.inputs, 't5', [512, 256]);
    const enc = new T5TextEncoder(c, ctx.runtime);
    ctx.note(`t5 (length ${length}): session created in ${(await enc.prepare(length)).toFixed(0)} ms`);
    const t0 = performance.now();
    const out = await enc.encode(ids, length);
    ctx.note(`run: ${(performance.now() - t0).toFixed(0)} ms`);
    await enc.release();
    return {
      tensors: {
        last_hidden_state: { dtype: 'float32', shape: [batch, length, out.dModel], data: out.lastHiddenState },
      },
    };
  },
};
