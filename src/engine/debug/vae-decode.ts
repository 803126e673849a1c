import { VaeCodec, type Nchw } from '../graphs/vae-codec.ts';
import { floatInput } from './io.ts';
import type { DebugComponent } from './component.ts';

/** debug vae-decode: the pipeline's final latent (before FLUX's unscale) → image. */
export const component: DebugComponent = {
  summary:
    "VAE decoder: latent (unpacked [B, 16, h, w], before FLUX's unscale) → image ([B, 3, 8h, 8w], [-1, 1] scale, not clamped)",
  required: ['inputs', 'out'],
  async run(ctx) {
    const vae = new VaeCodec(ctx.checkpoint().component('vae'), ctx.runtime);
    const latent = floatInput(ctx.inputs, 'latent', 'vae-decode', 4);
    ctx.note(`vae decoder: session created in ${(await vae.prepareDecoder()).toFixed(0)} ms`);
    const t0 = performance.now();
    const image = await vae.decode({ data: latent.data, shape: latent.shape as Nchw['shape'] });
    ctx.note(`run: ${(performance.now() - t0).toFixed(0)} ms`);
    await vae.release();
    return { tensors: { image: { dtype: 'float32', shape: [...image.shape], data: image.data } } };
  },
};
