import { UserError } from '../../config/errors.ts';
import { toFloat32, type HostTensor } from '../weights/safetensors.ts';

/** Helpers for debug components: fetch inputs by name with clear errors. */

export function requireInput(inputs: Record<string, HostTensor>, name: string, component: string): HostTensor {
  const t = inputs[name];
  if (!t) {
    const have = Object.keys(inputs);
    const list =
      have.length === 0 ? 'none' : have.slice(0, 8).join(', ') + (have.length > 8 ? `, … (${have.length} in all)` : '');
    throw new UserError(
      `debug ${component}: input tensor "${name}" is missing from --inputs (found: ${list}; for files with caseN_ names use --prefix caseN_)`,
      2,
    );
  }
  return t;
}

/** The input as float32, accepting any numeric dtype (ids are often stored as int64). */
export function floatInput(
  inputs: Record<string, HostTensor>,
  name: string,
  component: string,
  rank?: number,
): { data: Float32Array; shape: number[] } {
  const t = requireInput(inputs, name, component);
  if (rank !== undefined && t.shape.length !== rank) {
    throw new UserError(
      `debug ${component}: input "${name}" has shape [${t.shape.join(',')}], expected ${rank} dimensions`,
      2,
    );
  }
  return { data: toFloat32(t), shape: t.shape };
}
