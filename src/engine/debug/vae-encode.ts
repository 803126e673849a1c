import type { HostTensor } from '../weights/safetensors.ts';
import { VaeCodec, type Nchw } from '../graphs/vae-codec.ts';
import { floatInput } from './io.ts';
import type { DebugComponent } from './component.ts';

/** debug vae-encode: image → FLUX-scaled latent (mean − shift)·scale; --intermediates adds mean and logvar. */
export const component: DebugComponent = {
  summary:
    'VAE encoder: image ([B, 3, H, W] in [-1, 1]) → latent ((mean − shift)·scale, [B, 16, H/8, W/8]); --intermediates adds mean, logvar',
  required: ['inputs', 'out'],
  async run(ctx) {
    const vae = new VaeCodec(ctx.checkpoint().component('vae'), ctx.runtime);
    const image = floatInput(ctx.inputs, 'image', 'vae-encode', 4);
    ctx.note(`vae encoder: session created in ${(await vae.prepareEncoder()).toFixed(0)} ms`);
    const t0 = performance.now();
    const out = await vae.encode({ data: image.data, shape: image.shape as Nchw['shape'] });
    ctx.note(`run: ${(performance.now() - t0).toFixed(0)} ms`);
    await vae.release();
    const t = (x: Nchw): HostTensor => ({ dtype: 'float32', shape: [...x.shape], data: x.data });
    const tensors: Record<string, HostTensor> = { latent: t(out.latent) };
    if (ctx.flags.intermediates === true) {
      tensors.mean = t(out.mean);
      tensors.logvar = t(out.logvar);
    }
    return { tensors };
  },
};
