import type { DType, TensorSource } from '../onnx/graph.ts';
import { WeightsError } from './errors.ts';

/**
 * One weights file as the checkpoint layer reads it, whatever its format (safetensors, GGUF): tensors by the
 * names the file uses, with PyTorch's shape order ([out, in] for a linear weight). Mapping code (BFL/ComfyUI
 * key names → diffusers names) works over this interface only.
 */
export interface TensorFile {
  /** How errors name the file, e.g. "flux1-dev-Q4_0.gguf". */
  readonly label: string;
  /** Absolute path with symlinks resolved. */
  readonly realPath: string;
  names(): string[];
  has(name: string): boolean;
  /**
   * The logical dtype and shape (a block-quantized tensor reports the float type it decodes to) and, for
   * block-quantized tensors, the format's name (GGUF "Q4_K", ...).
   */
  info(name: string): { dtype: DType; shape: number[]; format?: string };
  /** Where the bytes are (plain, fp8 or `encoded`); throws WeightsError naming file and tensor if missing. */
  source(name: string): TensorSource;
}

/** A file's tensor table by name: what every TensorFile looks tensors up in. */
export abstract class TensorTable<T> {
  protected readonly tensors = new Map<string, T>();
  abstract readonly label: string;

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): T {
    const t = this.tensors.get(name);
    if (!t) throw new WeightsError(`${this.label}: no tensor named ${name}`);
    return t;
  }
}
