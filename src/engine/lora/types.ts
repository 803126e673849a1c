/**
 * The LoRA contract between the file readers (lora/files) and the step graph's adapter inputs (lora/graph,
 * lora/feeds): a LoRA file becomes low-rank factors keyed by the engine's own (diffusers) layer names, whatever
 * layout it came in, so the graph never knows about kohya, XLabs or BFL names.
 */

/** One adapted linear layer: y = W·x + s · alphaScale · up·(down·x), s the user's scale. */
export interface LoraLayer {
  /** A (lora_down / lora_A) [rank, in], row-major float32. Fused layers' parts may share one array. */
  down: Float32Array;
  /** B (lora_up / lora_B) [out, rank], row-major float32. */
  up: Float32Array;
  rank: number;
  inFeatures: number;
  outFeatures: number;
  /** alpha ÷ the rank of the module as the file stores it (3r for kohya split_qkv); 1 when the file has no alpha. */
  alphaScale: number;
}

/** What a LoRA file's metadata says about it (kohya `ss_*`, `modelspec.*`); all optional. */
export interface LoraMeta {
  /** Trigger words, most frequent first (from `ss_tag_frequency`, or `modelspec.trigger_phrase`). */
  triggerWords: string[];
  /** The base model it was trained for, as the file says it (`ss_base_model_version`, `modelspec.architecture`). */
  baseModel?: string;
  title?: string;
  description?: string;
}

export type LoraFormat = 'diffusers' | 'kohya' | 'bfl' | 'xlabs';

/** A LoRA file read and mapped onto a transformer: its layers by the engine's layer name (e.g. `transformer_blocks.0.attn.to_q`). */
export interface LoraFile {
  path: string;
  /** SHA-256 of the whole file, lowercase hex. */
  sha256: string;
  format: LoraFormat;
  layers: Map<string, LoraLayer>;
  meta: LoraMeta;
  /** Things the user should know that do not stop it (text-encoder keys skipped, a partial match with counts). */
  warnings: string[];
}
