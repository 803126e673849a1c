import { openTransformer, TRANSFORMER_OUTPUT } from '../graphs/flux-transformer-session.ts';
import type { HostTensor } from '../weights/safetensors.ts';
import { floatInput } from './io.ts';
import type { DebugComponent } from './component.ts';

/** debug transformer: one FluxTransformer2DModel forward on given inputs → `sample`. */
export const component: DebugComponent = {
  summary:
    'FLUX transformer: hidden_states, encoder_hidden_states, pooled_projections, timestep (σ), guidance (dev), img_ids, txt_ids → sample',
  required: ['inputs', 'out'],
  async run(ctx) {
    const ck = ctx.checkpoint();
    const get = (name: string, rank?: number) => floatInput(ctx.inputs, name, 'transformer', rank).data;
    const hidden = floatInput(ctx.inputs, 'hidden_states', 'transformer', 3);
    const tr = await openTransformer(ck, ctx.runtime, { intermediates: ctx.flags.intermediates === true });
    ctx.note(
      `transformer (${ck.variant}, ${ck.layout} layout): ${tr.nodeCount} nodes, session created in ${tr.createMs.toFixed(0)} ms`,
    );
    if (!ck.transformerConfig.guidanceEmbeds && ctx.inputs.guidance)
      ctx.note('guidance given but this transformer has no guidance embedding (schnell); ignored');
    const t0 = performance.now();
    const out = await tr.run({
      hidden_states: hidden.data,
      encoder_hidden_states: get('encoder_hidden_states', 3),
      pooled_projections: get('pooled_projections', 2),
      timestep: get('timestep', 1),
      guidance: ck.transformerConfig.guidanceEmbeds ? get('guidance', 1) : undefined,
      img_ids: get('img_ids', 2),
      txt_ids: get('txt_ids', 2),
    });
    ctx.note(`run: ${(performance.now() - t0).toFixed(0)} ms`);
    await tr.release();
    const tensors: Record<string, HostTensor> = {};
    const sample = out[TRANSFORMER_OUTPUT]!;
    tensors[TRANSFORMER_OUTPUT] = { dtype: 'float32', shape: [...sample.dims], data: sample.data as Float32Array };
    for (const [name, t] of Object.entries(out)) {
      if (name !== TRANSFORMER_OUTPUT)
        tensors[name] = { dtype: 'float32', shape: [...t.dims], data: t.data as Float32Array };
    }
    return { tensors };
  },
};
