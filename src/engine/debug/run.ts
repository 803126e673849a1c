import { existsSync } from 'node:fs';
import { UserError } from '../../config/errors.ts';
import { loadCheckpoint } from '../checkpoint/index.ts';
import type { FluxCheckpoint } from '../checkpoint/types.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { readSafetensors, writeSafetensors, type HostTensor } from '../weights/safetensors.ts';
import type { DebugFlag, DebugResult } from './component.ts';
import { DEBUG_COMPONENTS } from './registry.ts';

/** Runs one debug component: reads --inputs, opens --model lazily, writes --out or returns JSON. */
export async function runDebug(
  name: string,
  flags: Partial<Record<DebugFlag, string | boolean>>,
  runtime: RuntimeOptions,
  note: (m: string) => void,
): Promise<DebugResult> {
  const load = DEBUG_COMPONENTS[name];
  if (!load)
    throw new UserError(
      `unknown debug component "${name}". Components: ${Object.keys(DEBUG_COMPONENTS).join(', ')}`,
      2,
    );
  const { component } = await load();
  const model = flags.model;
  if (typeof model !== 'string') throw new UserError(`debug ${name} needs --model <checkpoint folder>`, 2);
  for (const f of component.required) {
    if (flags[f] === undefined) throw new UserError(`debug ${name} needs --${f}`, 2);
  }
  let inputs: Record<string, HostTensor> = {};
  if (typeof flags.inputs === 'string') {
    if (!existsSync(flags.inputs)) throw new UserError(`--inputs ${flags.inputs} does not exist`, 2);
    const all = readSafetensors(flags.inputs).tensors;
    const prefix = typeof flags.prefix === 'string' ? flags.prefix : '';
    inputs = Object.fromEntries(
      Object.entries(all)
        .filter(([k]) => k.startsWith(prefix))
        .map(([k, v]) => [k.slice(prefix.length), v]),
    );
  }
  let ck: FluxCheckpoint | undefined;
  const result = await component.run({
    checkpoint: () => (ck ??= loadCheckpoint(model)),
    inputs,
    flags,
    runtime,
    note,
  });
  if ('tensors' in result) {
    if (typeof flags.out !== 'string') throw new UserError(`debug ${name} needs --out <file.safetensors>`, 2);
    writeSafetensors(flags.out, result.tensors, { producer: `scenewright debug ${name}` });
  }
  return result;
}
