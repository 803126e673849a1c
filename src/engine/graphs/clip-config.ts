import { UserError } from '../../config/errors.ts';
import type { FloatType } from '../onnx/graph.ts';
import type { NamedWeights } from '../weights/named-weights.ts';

/**
 * What a text/VAE graph builder needs of a checkpoint component: its config.json and its weights under
 * transformers/diffusers names (the checkpoint loader's `Component` has this shape).
 */
export interface ComponentInput {
  config: Record<string, unknown>;
  /** How messages name the config, e.g. "text_encoder/config.json". */
  configFile: string;
  weights: NamedWeights;
}

export interface TextGraphOptions {
  /** Compute type inside the graph (I/O stays float32/int64). Default float32. */
  computeType?: FloatType;
  /** Attention as com.microsoft.MultiHeadAttention ('mha', default) or plain ops ('explicit'). */
  attention?: 'mha' | 'explicit';
  /**
   * Linear layers as com.microsoft.FusedMatMul ('fused', the CPU's fastest) or Transpose + MatMul ('transpose':
   * WebGPU has no FusedMatMul kernel). Default 'fused'; the encoders take their provider's form (graphFormFor).
   */
  linear?: 'fused' | 'transpose';
  /** Also output `hidden_states_<i>` (embeddings, then each layer), as transformers' output_hidden_states. */
  hiddenStates?: boolean;
}

/** Reads config values with messages that name the file and the key. */
export function configReader(config: Record<string, unknown>, file: string) {
  const get = (key: string): unknown => config[key];
  return {
    int(key: string, fallback?: number): number {
      const v = get(key) ?? fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
        throw new UserError(`${file}: "${key}" must be a positive whole number (got ${JSON.stringify(get(key))})`);
      return v;
    },
    num(key: string, fallback?: number): number {
      const v = get(key) ?? fallback;
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new UserError(`${file}: "${key}" must be a number (got ${JSON.stringify(get(key))})`);
      return v;
    },
    str(key: string, fallback?: string): string {
      const v = get(key) ?? fallback;
      if (typeof v !== 'string')
        throw new UserError(`${file}: "${key}" must be a string (got ${JSON.stringify(get(key))})`);
      return v;
    },
    ints(key: string): number[] {
      const v = get(key);
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x > 0)) {
        throw new UserError(`${file}: "${key}" must be a list of positive whole numbers (got ${JSON.stringify(v)})`);
      }
      return v as number[];
    },
    has: (key: string): boolean => get(key) !== undefined && get(key) !== null,
    raw: get,
  };
}
