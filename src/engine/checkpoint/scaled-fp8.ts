import { childLogger } from '../../log/logger.ts';
import type { TensorSource } from '../onnx/graph.ts';
import type { TensorFile } from '../weights/tensor-file.ts';
import { sourceToFloat32 } from '../weights/tensor-source.ts';
import { CheckpointError } from './errors.ts';

/**
 * ComfyUI's "scaled fp8" files (flux1-dev-fp8-scaled, t5xxl_fp8_e4m3fn_scaled.safetensors): a `scaled_fp8`
 * marker tensor whose dtype names the fp8 format, and per layer a scalar F32 `<layer>.scale_weight` such that
 * weight = fp8 value × scale_weight. The scale is folded into the weight's TensorSource (`scale`), which the graph
 * applies inside its DequantizeLinear, so the fp8 bytes stay as they are on disk.
 * `<layer>.scale_input` scales fp8 *activations*; weight-only use does not need it.
 * Anything else that looks like a scale (per-channel scale_weight, weight_scale / input_scale of other tools,
 * comfy_quant) is refused: guessing what it means would give a wrong image, not an error.
 */

const log = childLogger('checkpoint');

const MARKER = /(^|\.)scaled_fp8$/;
/** Names of scale tensors other tools write; we do not know their semantics. */
const OTHER_SCALE = /(^|\.)(scale_\w+|\w*_scale(_\d+)?|comfy_quant)$/;
/** A scale-like name that is an ordinary parameter (CLIP's contrastive temperature). */
const NOT_A_SCALE = /(^|\.)logit_scale$/;

export function isScaleTensor(name: string): boolean {
  return MARKER.test(name) || (OTHER_SCALE.test(name) && !NOT_A_SCALE.test(name));
}

/** A TensorFile with ComfyUI's scale tensors folded into the fp8 weights they belong to (and hidden). */
export class ScaledFp8File implements TensorFile {
  readonly label: string;
  readonly realPath: string;
  private readonly scales = new Map<string, number>();
  private readonly visible: string[];

  private constructor(
    private readonly inner: TensorFile,
    readonly scaledMarker: boolean,
  ) {
    this.label = inner.label;
    this.realPath = inner.realPath;
    const hidden = new Set<string>();
    let inputs = 0;
    for (const name of inner.names()) {
      if (MARKER.test(name)) {
        const dtype = inner.info(name).dtype;
        // ComfyUI stores the marker in the fp8 dtype it used; an F32 marker is its legacy spelling of e4m3fn.
        if (dtype !== 'float8e4m3fn' && dtype !== 'float32') {
          throw this.unknown(
            name,
            `the scaled_fp8 marker is ${dtype}, which names no fp8 format the engine reads (only e4m3fn)`,
          );
        }
        hidden.add(name);
      } else if (name.endsWith('.scale_weight')) {
        this.scales.set(this.weightOf(name), this.scalar(name));
        hidden.add(name);
      } else if (name.endsWith('.scale_input')) {
        this.scalar(name);
        inputs++;
        hidden.add(name);
      } else if (OTHER_SCALE.test(name) && !NOT_A_SCALE.test(name)) {
        throw this.unknown(name, 'it is not a ComfyUI scale_weight / scale_input');
      }
    }
    if (inputs > 0)
      log.debug(
        { file: this.label, tensors: inputs },
        'scale_input tensors ignored: they scale fp8 activations, and the engine computes in bf16/fp32 (weight-only fp8)',
      );
    this.visible = inner.names().filter((n) => !hidden.has(n));
  }

  /** `file` itself when it holds no scale tensors, else the folded view. Throws on scales it does not understand. */
  static wrap(file: TensorFile): TensorFile {
    return file.names().some(isScaleTensor)
      ? new ScaledFp8File(
          file,
          file.names().some((n) => MARKER.test(n)),
        )
      : file;
  }

  /** Number of weights that carry a scale_weight. */
  get scaledWeights(): number {
    return this.scales.size;
  }

  private unknown(name: string, why: string): CheckpointError {
    return new CheckpointError(
      `${this.label}: tensor ${name} holds scales the engine does not understand (${why}). ` +
        'Use a plain fp8 e4m3fn file (e.g. flux1-dev-fp8.safetensors, t5xxl_fp8_e4m3fn.safetensors), a ComfyUI "scaled fp8" file, a GGUF or a bf16 file instead',
    );
  }

  private weightOf(scaleName: string): string {
    const weight = `${scaleName.slice(0, -'.scale_weight'.length)}.weight`;
    if (!this.inner.has(weight)) throw this.unknown(scaleName, `there is no ${weight} for it to scale`);
    const dtype = this.inner.info(weight).dtype;
    if (dtype !== 'float8e4m3fn') throw this.unknown(scaleName, `${weight} is ${dtype}, not fp8 e4m3fn`);
    return weight;
  }

  private scalar(name: string): number {
    const { dtype, shape } = this.inner.info(name);
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== 1 || shape.length > 1)
      throw this.unknown(name, `shape [${shape.join(',')}]: only one scale per tensor (a scalar) is supported`);
    if (dtype !== 'float32' && dtype !== 'float16' && dtype !== 'bfloat16')
      throw this.unknown(name, `a ${dtype} scale`);
    const v = sourceToFloat32(this.inner.source(name))[0]!;
    if (!Number.isFinite(v) || v === 0) throw this.unknown(name, `the scale is ${v}`);
    return v;
  }

  names(): string[] {
    return this.visible;
  }

  has(name: string): boolean {
    return this.inner.has(name) && !isScaleTensor(name);
  }

  info(name: string) {
    return this.inner.info(name);
  }

  source(name: string): TensorSource {
    const src = this.inner.source(name);
    const scale = this.scales.get(name);
    return scale === undefined ? src : { ...src, scale };
  }
}
