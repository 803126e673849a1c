import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { ClipTextEncoder } from '../../src/engine/graphs/clip-encoder.ts';
import { T5TextEncoder } from '../../src/engine/graphs/t5-encoder.ts';
import { loadClipTokenizer } from '../../src/engine/tokenizers/clip.ts';
import { loadT5Tokenizer } from '../../src/engine/tokenizers/t5.ts';
import { readSafetensors } from '../../src/engine/weights/safetensors.ts';
import { fixture } from '../support/fixtures.ts';

/**
 * Text → ids → embeddings end to end for every string RAG's pipeline encoded in the RAG goldens (global
 * prompts, hard-binding prompts, BREAK segments with their leading/trailing spaces, repaint prompts).
 * Tolerances as in clip-text.test.ts (1e-5) and t5-encoder.test.ts (1e-4, ill-conditioned softmax over 512
 * unmasked tokens; measured there).
 */
interface Entry {
  key: string;
  encoder: 'clip' | 't5';
  prompt: string;
  tensors: [string, string];
}
const lookup = (JSON.parse(fs.readFileSync(fixture('golden', 'rag.json'), 'utf8')) as { embedding_lookup: Entry[] })
  .embedding_lookup;
const golden = readSafetensors(fixture('golden', 'rag_embeddings.safetensors')).tensors;
const cpu = { executionProvider: 'cpu' as const, threads: 2 };
const ck = loadCheckpoint(fixture('tiny-flux-dev'));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
const ids = (name: string) => Array.from(golden[name]!.data as BigInt64Array, Number);

describe('RAG golden conditioning: tokenizer + encoder reproduce every encoded string', () => {
  const clipEntries = lookup.filter((e) => e.encoder === 'clip');
  const t5Entries = lookup.filter((e) => e.encoder === 't5');
  const t5 = new T5TextEncoder(ck.component('text_encoder_2'), cpu);
  afterAll(() => t5.release());

  it('has both kinds of entries, including BREAK segments with edge spaces', () => {
    expect(clipEntries.length).toBeGreaterThan(3);
    expect(t5Entries.some((e) => e.prompt.startsWith(' ') || e.prompt.endsWith(' '))).toBe(true);
  });

  it('CLIP: ids and pooled embeddings', async () => {
    const tok = loadClipTokenizer(ck.assetFolder('tokenizer'));
    const enc = await ClipTextEncoder.create(ck.component('text_encoder'), cpu);
    const batch = clipEntries.map((e) => tok.inputIds(e.prompt));
    clipEntries.forEach((e, i) => expect(batch[i], e.key).toEqual(ids(e.tensors[0])));
    const out = await enc.encode(batch);
    clipEntries.forEach((e, i) => {
      expect(
        maxAbsDiff(out.pooled.subarray(i * 16, (i + 1) * 16), golden[e.tensors[1]]!.data as Float32Array),
        e.key,
      ).toBeLessThan(1e-5);
    });
    await enc.release();
  });

  it('T5 (512): ids and embeddings', async () => {
    const tok = loadT5Tokenizer(ck.assetFolder('tokenizer_2'));
    const batch = t5Entries.map((e) => tok.inputIds(e.prompt, 512));
    t5Entries.forEach((e, i) => expect(batch[i], e.key).toEqual(ids(e.tensors[0])));
    const out = await t5.encode(batch, 512);
    const n = 512 * 32;
    t5Entries.forEach((e, i) => {
      expect(
        maxAbsDiff(out.lastHiddenState.subarray(i * n, (i + 1) * n), golden[e.tensors[1]]!.data as Float32Array),
        e.key,
      ).toBeLessThan(1e-4);
    });
  });
});
