import type { FluxCheckpoint } from '../checkpoint/types.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import type { HostTensor } from '../weights/safetensors.ts';

/**
 * What a `scenewright debug <component>` module implements (DESIGN.md §5): the flags, the context it runs in and
 * what it returns. Components import this; the list of components (registry.ts) imports them.
 */

/** Every flag a debug component may read (the CLI accepts all of them; each component says which it needs). */
export const DEBUG_FLAGS = {
  model: { type: 'string' },
  inputs: { type: 'string' },
  out: { type: 'string' },
  /** Read only tensors whose names start with this and strip it (e.g. `case1_` to run on a golden file). */
  prefix: { type: 'string' },
  steps: { type: 'string' },
  'seq-len': { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  guidance: { type: 'string' },
  params: { type: 'string' },
  /** Also write intermediate tensors where the component has them (e.g. the transformer's dbg_*). */
  intermediates: { type: 'boolean' },
} as const;
export type DebugFlag = keyof typeof DEBUG_FLAGS;

export interface DebugContext {
  /** The checkpoint from --model, opened on first use. */
  checkpoint(): FluxCheckpoint;
  /** Tensors from --inputs (prefix stripped); empty when the component takes no --inputs. */
  inputs: Record<string, HostTensor>;
  /** Raw flag values. */
  flags: Partial<Record<DebugFlag, string | boolean>>;
  runtime: RuntimeOptions;
  /** Progress lines for the user (stderr). */
  note(message: string): void;
}

/** What a component produces: tensors for --out, or JSON printed to stdout (e.g. the scheduler). */
export type DebugResult = { tensors: Record<string, HostTensor> } | { json: unknown };

export interface DebugComponent {
  summary: string;
  /** Flags that must be given (besides --model, which every component needs). */
  required: DebugFlag[];
  run(ctx: DebugContext): Promise<DebugResult>;
}
