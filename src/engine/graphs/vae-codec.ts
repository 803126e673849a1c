import { createSession, graphFormFor, ort, type RuntimeOptions } from '../runtime/session.ts';
import type { ComponentInput } from './clip-config.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph, vaeConfig, type VaeGraphOptions } from './vae.ts';

/** A float32 NCHW tensor on the host. */
export interface Nchw {
  data: Float32Array;
  shape: [number, number, number, number];
}

function check(t: Nchw, channels: number, what: string): void {
  const [b, c, h, w] = t.shape;
  if (c !== channels || t.data.length !== b * c * h * w) {
    throw new Error(
      `${what}: expected [B, ${channels}, H, W] float32 data, got shape [${t.shape.join(', ')}] with ${t.data.length} values`,
    );
  }
}

/**
 * The VAE as ORT sessions: `decode` takes the pipeline's unpacked latent (FLUX scaling applied inside),
 * `encode` returns the FLUX-scaled latent. Each session is created on first use.
 */
export class VaeCodec {
  private decoder?: Promise<{ session: ort.InferenceSession; createMs: number }>;
  private encoder?: Promise<{ session: ort.InferenceSession; createMs: number }>;
  readonly latentChannels: number;
  readonly scalingFactor: number;
  readonly shiftFactor: number;

  constructor(
    private readonly component: ComponentInput,
    private readonly runtime: RuntimeOptions,
    private readonly opts: VaeGraphOptions = {},
  ) {
    const cfg = vaeConfig(component);
    this.latentChannels = cfg.latentChannels;
    this.scalingFactor = cfg.scalingFactor;
    this.shiftFactor = cfg.shiftFactor;
  }

  /** The provider's graph form (WebGPU has no FusedMatMul), unless the caller chose one. */
  private graphOptions(): VaeGraphOptions {
    return { linear: graphFormFor(this.runtime.executionProvider).linear, ...this.opts };
  }

  /** Creates the decoder session now; resolves to its creation time in ms. */
  async prepareDecoder(): Promise<number> {
    this.decoder ??= createSession(buildVaeDecoderGraph(this.component, this.graphOptions()), this.runtime);
    return (await this.decoder).createMs;
  }

  async prepareEncoder(): Promise<number> {
    this.encoder ??= createSession(buildVaeEncoderGraph(this.component, this.graphOptions()), this.runtime);
    return (await this.encoder).createMs;
  }

  /** latent [B, 16, h, w] → image [B, 3, 8h, 8w], roughly in [-1, 1], not clamped. */
  async decode(latent: Nchw): Promise<Nchw> {
    check(latent, this.latentChannels, 'vae decode input');
    await this.prepareDecoder();
    const { session } = await this.decoder!;
    const out = await session.run({ latent: new ort.Tensor('float32', latent.data, latent.shape) });
    const image = out.image!;
    return { data: image.data as Float32Array, shape: image.dims as Nchw['shape'] };
  }

  /** image [B, 3, H, W] in [-1, 1] → FLUX latent [B, 16, H/8, W/8] = (mean − shift)·scale. */
  async encode(image: Nchw): Promise<{ latent: Nchw; mean: Nchw; logvar: Nchw }> {
    check(image, 3, 'vae encode input');
    await this.prepareEncoder();
    const { session } = await this.encoder!;
    const out = await session.run({ image: new ort.Tensor('float32', image.data, image.shape) });
    const t = (name: string): Nchw => ({
      data: out[name]!.data as Float32Array,
      shape: out[name]!.dims as Nchw['shape'],
    });
    return { latent: t('latent'), mean: t('mean'), logvar: t('logvar') };
  }

  async release(): Promise<void> {
    for (const s of [this.decoder, this.encoder]) if (s) await (await s).session.release();
    this.decoder = undefined;
    this.encoder = undefined;
  }
}
