import { UserError } from '../../config/errors.ts';
import { intOption } from '../../config/int-option.ts';
import { concatFloat32 } from '../float32.ts';
import { unpackLatents } from '../latents.ts';
import { Engine } from '../pipeline/engine.ts';
import { TableConditioning } from '../pipeline/conditioning.ts';
import { plainPlan } from '../pipeline/run-plan.ts';
import type { HostTensor } from '../weights/safetensors.ts';
import { floatInput } from './io.ts';
import type { DebugComponent } from './component.ts';

/**
 * debug pipeline: the plain FLUX pipeline on given conditioning and initial latents (what
 * `FluxPipeline(prompt_embeds=, pooled_prompt_embeds=, latents=)` does) → final_latents (packed) and image.
 */
export const component: DebugComponent = {
  summary:
    'plain pipeline: prompt_embeds, pooled_prompt_embeds, latents_init (packed) + --steps --width --height [--guidance] → final_latents, image (also latents_per_step, noise_pred_per_step)',
  required: ['inputs', 'out', 'steps', 'width', 'height'],
  async run(ctx) {
    const steps = intOption(String(ctx.flags.steps), 'steps', 1, 1000)!;
    const width = intOption(String(ctx.flags.width), 'width', 16, 8192)!;
    const height = intOption(String(ctx.flags.height), 'height', 16, 8192)!;
    const guidance = ctx.flags.guidance === undefined ? 3.5 : Number(ctx.flags.guidance);
    if (!Number.isFinite(guidance))
      throw new UserError(`--guidance must be a number (got "${String(ctx.flags.guidance)}")`, 2);
    const embeds = floatInput(ctx.inputs, 'prompt_embeds', 'pipeline', 3);
    const pooled = floatInput(ctx.inputs, 'pooled_prompt_embeds', 'pipeline', 2);
    const init = floatInput(ctx.inputs, 'latents_init', 'pipeline', 3);
    const textLength = embeds.shape[1]!;
    const plan = plainPlan('', { width, height, steps, guidance, seed: 0, textLength });
    const rows = height / 16;
    const cols = width / 16;
    if (init.shape[1] !== rows * cols)
      throw new UserError(
        `debug pipeline: latents_init has ${init.shape[1]} tokens, a ${width}×${height} image has ${rows * cols}`,
        2,
      );
    const engine = Engine.open({ modelDir: String(ctx.flags.model), runtime: ctx.runtime });
    try {
      const res = await engine.paint(plan, {
        conditioning: new TableConditioning(textLength, new Map([['', embeds.data]]), new Map([['', pooled.data]])),
        noise: {
          global: () => unpackLatents(init.data, 1, init.shape[2]! / 4, rows * 2, cols * 2),
          box: () => {
            throw new Error('no boxes in a plain run');
          },
          repaint: () => {
            throw new Error('no repaint in a plain run');
          },
        },
        record: true,
      });
      for (const s of engine.steps.sessions)
        ctx.note(`step graph (one for every layout): ${s.nodes} nodes, session created in ${s.createMs.toFixed(0)} ms`);
      ctx.note(`steps: ${res.stepMs.map((m) => m.toFixed(0)).join(', ')} ms`);
      const tokens = rows * cols;
      const C = init.shape[2]!;
      const stack = (xs: Float32Array[]): HostTensor => ({
        dtype: 'float32',
        shape: [xs.length, 1, tokens, C],
        data: concatFloat32(xs),
      });
      return {
        tensors: {
          final_latents: { dtype: 'float32', shape: [1, tokens, C], data: res.latents },
          image: { dtype: 'float32', shape: [...res.image.shape], data: res.image.data },
          latents_per_step: stack(res.trajectory.slice(1)),
          noise_pred_per_step: stack(res.record!.velocity),
        },
      };
    } finally {
      await engine.close();
    }
  },
};
