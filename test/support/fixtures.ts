import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The shared reference data beside the checkout (CI lays it out the same way); never copied in. */
export const FIXTURES = process.env.SCENEWRIGHT_FIXTURES ?? path.resolve(repoRoot, '../shared/fixtures');

export function fixture(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}

export { repoRoot };
