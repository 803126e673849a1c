// Real but broken FLUX checkpoints, made from the tiny fixture in a temporary folder: the engine's own
// failures (a missing component, weights cut short) are what the tests show reaching the user.
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fixture } from '../support/fixtures.ts';

export const TINY_SCHNELL = fixture('tiny-flux-schnell');

export interface BrokenCheckpoint {
  dir: string;
  remove(): void;
}

/** The first bytes of a safetensors file: the 8-byte length and the JSON header it announces. */
function headerOf(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const out = Buffer.alloc(8 + n);
    readSync(fd, out, 0, 8 + n, 0);
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * - `no-transformer`: the checkpoint without its transformer/ folder (cannot load).
 * - `truncated-transformer`: the transformer's safetensors cut off right after its header, so its
 *   configuration and shapes read fine and the weights are missing when the first job builds a session.
 */
export function brokenCheckpoint(
  kind: 'no-transformer' | 'truncated-transformer' | 'broken-tokenizer',
): BrokenCheckpoint {
  const dir = mkdtempSync(path.join(tmpdir(), `sw-broken-${kind}-`));
  for (const entry of readdirSync(TINY_SCHNELL)) {
    if (entry === 'transformer' && kind !== 'broken-tokenizer') continue;
    if (entry === 'tokenizer_2' && kind === 'broken-tokenizer') continue;
    symlinkSync(path.join(TINY_SCHNELL, entry), path.join(dir, entry));
  }
  if (kind === 'truncated-transformer') {
    const src = path.join(TINY_SCHNELL, 'transformer');
    const dst = path.join(dir, 'transformer');
    mkdirSync(dst);
    copyFileSync(path.join(src, 'config.json'), path.join(dst, 'config.json'));
    writeFileSync(
      path.join(dst, 'diffusion_pytorch_model.safetensors'),
      headerOf(path.join(src, 'diffusion_pytorch_model.safetensors')),
    );
  }
  if (kind === 'broken-tokenizer') {
    const src = path.join(TINY_SCHNELL, 'tokenizer_2');
    const dst = path.join(dir, 'tokenizer_2');
    mkdirSync(dst);
    for (const f of readdirSync(src)) copyFileSync(path.join(src, f), path.join(dst, f));
    writeFileSync(path.join(dst, 'tokenizer.json'), '{"version": "1.0", "model": ');
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
