import path from 'node:path';
import { loadRagParamsFile } from '../../rag/params.ts';
import { Engine } from '../pipeline/engine.ts';
import { explicitNoise } from '../pipeline/noise-source.ts';
import type { DebugComponent } from './component.ts';

/**
 * debug rag: RAG with the official parameter names (one object, or the first entry of a gallery file; a relative
 * Repainting_mask is found beside the params file) on the given noise draws `noise_draw_0 … n` (global latent,
 * each box in list order, then the repaint box; unpacked NCHW). Text goes through the checkpoint's own
 * tokenizers and encoders.
 */
export const component: DebugComponent = {
  summary:
    'RAG (official parameter names): --params <params.json> --inputs <noise_draw_0..n.safetensors> → final_latents, image [, final_repainting_latents, repainting_image]',
  required: ['params', 'inputs', 'out'],
  async run(ctx) {
    const file = String(ctx.flags.params);
    const [params] = loadRagParamsFile(file);
    const engine = Engine.open({ modelDir: String(ctx.flags.model), runtime: ctx.runtime });
    try {
      const plan = await engine.plan(params!, path.dirname(path.resolve(file)));
      const noise = explicitNoise(ctx.inputs, params!.HB_m_offset_list.length);
      const res = await engine.run(plan, { noise });
      for (const s of engine.steps.sessions)
        ctx.note(
          `step graph (one for every layout): ${s.nodes} nodes, session created in ${s.createMs.toFixed(0)} ms, runs ${Object.entries(
            s.runsBy,
          )
            .map(([k, n]) => `${k} ×${n}`)
            .join(', ')}`,
        );
      ctx.note(`steps: ${res.stepMs.map((m) => m.toFixed(0)).join(', ')} ms`);
      const tokens = res.latents.length / engine.steps.cfg.inChannels;
      const packed = (data: Float32Array) => ({
        dtype: 'float32' as const,
        shape: [1, tokens, engine.steps.cfg.inChannels],
        data,
      });
      const image = await engine.decode(res.latents, plan.width, plan.height);
      const tensors: Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> = {
        final_latents: packed(res.latents),
        image: { dtype: 'float32', shape: [...image.shape], data: image.data },
      };
      if (res.repaintLatents) {
        const rimage = await engine.decode(res.repaintLatents, plan.width, plan.height);
        tensors.final_repainting_latents = packed(res.repaintLatents);
        tensors.repainting_image = { dtype: 'float32', shape: [...rimage.shape], data: rimage.data };
      }
      return { tensors };
    } finally {
      await engine.close();
    }
  },
};
