import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fluxConfigFromDiffusers, type FluxTransformerConfig } from '../../src/engine/checkpoint/flux-config.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The shared reference data beside the checkout (CI lays it out the same way); never copied in. */
export const FIXTURES = process.env.SCENEWRIGHT_FIXTURES ?? path.resolve(repoRoot, '../shared/fixtures');

export function fixture(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}

export { repoRoot };

/** The transformer config of a tiny fixture checkpoint, as the engine reads it. */
export function tinyFluxConfig(name: 'tiny-flux-dev' | 'tiny-flux-schnell' = 'tiny-flux-dev'): FluxTransformerConfig {
  return fluxConfigFromDiffusers(
    JSON.parse(readFileSync(fixture(name, 'transformer', 'config.json'), 'utf8')),
    `${name}/transformer/config.json`,
  );
}
