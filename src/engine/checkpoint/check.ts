import type { NamedWeights } from '../weights/named-weights.ts';
import { CheckpointError } from './errors.ts';

/** Expected tensors of a component: name → shape, plus names that may be present or absent. */
export interface ShapeSpec {
  shapes: Map<string, number[]>;
  /** Tensors that may appear in the files without being needed (tied or legacy buffers); not checked. */
  optional?: (name: string) => boolean;
}

const fmt = (s: number[]) => `[${s.join(',')}]`;

/**
 * Checks that the weights hold exactly the tensors the config implies, with those shapes and a float dtype.
 * `configFile` is named in the messages (e.g. "transformer/config.json") so the user knows which two files disagree.
 */
export function checkShapes(weights: NamedWeights, spec: ShapeSpec, configFile: string): void {
  for (const [name, want] of spec.shapes) {
    if (!weights.has(name)) {
      throw new CheckpointError(
        `${weights.label}: tensor ${name} is missing, but ${configFile} implies it with shape ${fmt(want)} (incomplete download, or config and weights from different models)`,
      );
    }
    const { shape, dtype, file } = weights.info(name);
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
      throw new CheckpointError(
        `${file}: tensor ${name} has shape ${fmt(shape)}, ${configFile} implies ${fmt(want)} (config and weights are from different models?)`,
      );
    }
    if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16' && dtype !== 'float8e4m3fn') {
      throw new CheckpointError(
        `${file}: tensor ${name} is ${dtype}; only F32, F16, BF16 and F8_E4M3 weights (or GGUF quantized files) are supported`,
      );
    }
  }
  const extra = weights.names().filter((n) => !spec.shapes.has(n) && !spec.optional?.(n));
  if (extra.length > 0) {
    const more = extra.length > 3 ? ` and ${extra.length - 3} more` : '';
    throw new CheckpointError(
      `${weights.label}: tensors ${extra.slice(0, 3).join(', ')}${more} are not implied by ${configFile} (config and weights are from different models?)`,
    );
  }
}
