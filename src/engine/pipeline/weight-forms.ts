/**
 * Which form each component's weights run in (config WEIGHTS), applied to a checkpoint: the graphs then see
 * prepared weights (weights/prepare.ts) under the same names.
 */
import type { Component, ComponentName, FluxCheckpoint } from '../checkpoint/types.ts';
import type { WeightComponent, WeightForms } from '../weights/forms.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import { PreparedWeights } from '../weights/prepare.ts';

export { AS_STORED, defaultWeightsCacheDir, formsFor, parseWeightForms, type WeightForms } from '../weights/forms.ts';

/** Linear layers' weights, the only tensors quantized: every 2-D tensor but embedding tables. */
export const LINEAR: Record<WeightComponent | 'vae', (name: string, shape: number[]) => boolean> = {
  transformer: (n, s) => s.length === 2 && n.endsWith('.weight'),
  text_encoder_2: (n, s) =>
    s.length === 2 &&
    n.endsWith('.weight') &&
    n !== 'shared.weight' &&
    !n.includes('embed_tokens') &&
    !n.includes('relative_attention_bias'),
  text_encoder: (n, s) => s.length === 2 && n.endsWith('.weight') && !n.includes('embedding'),
  // The VAE is convolutions (its attention's 1×1 projections are 0.3 % of it): block formats are widened to bf16.
  vae: () => false,
};

/** Embedding tables the graphs read by row (Graph.embedding). */
const EMBEDDING: Record<WeightComponent | 'vae', (name: string) => boolean> = {
  transformer: () => false,
  text_encoder_2: (n) => n === 'shared.weight' || n === 'encoder.embed_tokens.weight',
  text_encoder: (n) => n === 'text_model.embeddings.token_embedding.weight',
  vae: () => false,
};

/** A checkpoint whose weights are prepared in the given forms (lazily: nothing is read until a graph is built). */
export class PreparedCheckpoint implements FluxCheckpoint {
  readonly source: string;
  readonly layout: FluxCheckpoint['layout'];
  readonly variant: FluxCheckpoint['variant'];
  readonly transformerConfig: FluxCheckpoint['transformerConfig'];
  private transformer?: PreparedWeights;
  private readonly components = new Map<ComponentName, Component & { weights: PreparedWeights }>();

  /** `readOnlyCacheDirs`: prepared weights to use when they match (a model folder's own scenewright-prepared/). */
  constructor(
    readonly inner: FluxCheckpoint,
    readonly forms: WeightForms,
    readonly cacheDir: string,
    private readonly readOnlyCacheDirs: string[] = [],
  ) {
    this.source = inner.source;
    this.layout = inner.layout;
    this.variant = inner.variant;
    this.transformerConfig = inner.transformerConfig;
  }

  private prepare(component: WeightComponent | 'vae', w: NamedWeights): PreparedWeights {
    const form = component === 'vae' ? 'auto' : this.forms[component];
    return new PreparedWeights(w, {
      component,
      form,
      cacheDir: this.cacheDir,
      readOnlyCacheDirs: this.readOnlyCacheDirs,
      isLinear: LINEAR[component],
      isEmbedding: EMBEDDING[component],
    });
  }

  transformerWeights(): PreparedWeights {
    this.transformer ??= this.prepare('transformer', this.inner.transformerWeights());
    return this.transformer;
  }

  component(name: ComponentName): Component {
    let c = this.components.get(name);
    if (!c) {
      const raw = this.inner.component(name);
      c = { ...raw, weights: this.prepare(name, raw.weights) };
      this.components.set(name, c);
    }
    return c;
  }

  form(part: 'transformer' | ComponentName) {
    return this.inner.form?.(part) ?? { file: '?', keys: 'diffusers' as const, storage: '?' };
  }

  assetFolder(name: Parameters<FluxCheckpoint['assetFolder']>[0]): string {
    return this.inner.assetFolder(name);
  }

  schedulerConfig() {
    return this.inner.schedulerConfig();
  }
}
