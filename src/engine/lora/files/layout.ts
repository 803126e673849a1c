import type { LoraFormat } from '../types.ts';
import type { ModuleTargets } from './names.ts';

/** What a LoRA key holds: the A (down) or B (up) factor of a module, or its alpha. */
export type Role = 'down' | 'up' | 'alpha';

/** A key understood by a layout: its module (as the file names it), its role and the engine layers it feeds. */
export interface ParsedKey {
  module: string;
  role: Role;
  /** undefined: a module of this layout that is not a FLUX transformer linear (counted, warned, skipped). */
  targets: ModuleTargets | undefined;
}

/** One way people's LoRA files name their tensors. */
export interface LoraLayout {
  format: LoraFormat;
  /** undefined when the key is not in this layout's vocabulary. */
  parseKey(key: string): ParsedKey | undefined;
}

/** The factor suffixes PEFT (lora_A/lora_B), kohya (lora_down/lora_up) and old diffusers (lora.down/lora.up) use. */
const SUFFIXES: readonly [string, Role][] = [
  ['.lora_A.weight', 'down'],
  ['.lora_B.weight', 'up'],
  ['.lora_down.weight', 'down'],
  ['.lora_up.weight', 'up'],
  ['.lora.down.weight', 'down'],
  ['.lora.up.weight', 'up'],
  ['.alpha', 'alpha'],
];

/** `x.y.lora_A.weight` → { module: 'x.y', role: 'down' }. */
export function splitSuffix(key: string): { module: string; role: Role } | undefined {
  for (const [suffix, role] of SUFFIXES) {
    if (key.endsWith(suffix) && key.length > suffix.length) return { module: key.slice(0, -suffix.length), role };
  }
  return undefined;
}

/** Strips the first prefix of `prefixes` that `s` starts with ('' matches anything). */
export function stripPrefix(s: string, prefixes: readonly string[]): string | undefined {
  for (const p of prefixes) if (s.startsWith(p)) return s.slice(p.length);
  return undefined;
}
