import type { FluxTransformerConfig } from '../src/engine/checkpoint/index.ts';

/**
 * FLOPs of one plain FLUX transformer call on N image and L text tokens (multiply-adds count 2). Every
 * block costs 24·D² per token in its linear layers (double: q,k,v 6D², out 2D², MLP 16D² on each stream;
 * single: linear1 to 3D+4D 14D², proj_out from 5D 10D²) plus 4·S²·D for attention scores and values.
 */
export function plainStepFlops(cfg: FluxTransformerConfig, N: number, L: number): number {
  const D = cfg.inner;
  const S = N + L;
  const block = 24 * D * D * S + 4 * S * S * D;
  const embed = 2 * N * cfg.inChannels * D + 2 * L * cfg.jointAttentionDim * D + 2 * N * D * cfg.outChannels;
  return (cfg.numLayers + cfg.numSingleLayers) * block + embed;
}
