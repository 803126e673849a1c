import { UserError } from './errors.ts';

/**
 * A whole-number flag in [min, max], or undefined when it was not given. Below the CLI so that the engine's debug
 * components, which the CLI and tests both drive with raw flag values, read their numbers the way every command does.
 */
export function intOption(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UserError(`--${name} must be a whole number from ${min} to ${max} (got "${value}")`, 2);
  return n;
}
