import { fluxTransformerShapes, type FluxTransformerConfig } from '../../checkpoint/flux-config.ts';
import type { LoraTarget } from './plan.ts';

/** A LoraTarget for a FLUX transformer config: every linear's [out, in], no weights needed. */
export function fluxLoraTarget(config: FluxTransformerConfig, label: string): LoraTarget {
  const { shapes } = fluxTransformerShapes(config);
  return {
    label,
    layerShape(name) {
      const s = shapes.get(`${name}.weight`);
      return s && s.length === 2 ? [s[0]!, s[1]!] : undefined;
    },
  };
}
