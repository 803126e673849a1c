import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadClipTokenizer } from '../../src/engine/tokenizers/clip.ts';
import { htmlUnescape } from '../../src/engine/tokenizers/html-unescape.ts';
import { loadT5Tokenizer } from '../../src/engine/tokenizers/t5.ts';
import { PrecompiledCharsmap } from '../../src/engine/tokenizers/charsmap.ts';
import { fixture } from '../support/fixtures.ts';

interface GoldenPrompt {
  key: string;
  text: string;
  clip: { input_ids_77: number[]; bpe_ids_no_special: number[]; pieces: string[]; truncated: boolean };
  t5: { sp_ids_no_eos: number[]; input_ids_512: number[]; input_ids_256: number[] };
}
const golden = JSON.parse(fs.readFileSync(fixture('tokenizers', 'golden-ids.json'), 'utf8')) as {
  prompts: GoldenPrompt[];
};
const clipDir = fixture('tokenizers', 'clip-vit-large-patch14');
const t5Dir = fixture('tokenizers', 't5-v1_1-xxl');

describe('CLIP tokenizer (vocab.json + merges.txt)', () => {
  const clip = loadClipTokenizer(clipDir);

  it('reads the special ids and length from the config files', () => {
    expect([clip.bosId, clip.eosId, clip.padId, clip.maxLength]).toEqual([49406, 49407, 49407, 77]);
  });

  // The reference is openai's SimpleTokenizer framed as FLUX does (fixtures/README.md §2), all 29 prompts,
  // including html entities, CJK, emoji, and the 93-token prompt that must be cut to 77 with EOS last.
  it.each(golden.prompts.map((p) => [p.key, p] as const))(
    '%s: ids, pieces and 77-framing match the reference',
    (_key, p) => {
      expect(clip.pieces(p.text).slice(0, 90)).toEqual(p.clip.pieces);
      expect(clip.encode(p.text)).toEqual(p.clip.bpe_ids_no_special);
      const ids = clip.inputIds(p.text);
      expect(ids).toEqual(p.clip.input_ids_77);
      expect(ids).toHaveLength(77);
      if (p.clip.truncated) expect(ids[76]).toBe(49407);
    },
  );

  it('the tiny checkpoint ships the same tokenizer', () => {
    const tiny = loadClipTokenizer(fixture('tiny-flux-dev', 'tokenizer'));
    const p = golden.prompts.find((x) => x.key === 'sentence_punct')!;
    expect(tiny.inputIds(p.text)).toEqual(p.clip.input_ids_77);
  });

  it('takes the pad id from the tokenizer config', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clip-tok-'));
    try {
      for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(clipDir, f), path.join(dir, f));
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ pad_token: '!' }));
      const tok = loadClipTokenizer(dir);
      expect(tok.padId).toBe(0);
      expect(tok.inputIds('a cat').slice(0, 5)).toEqual([49406, 320, 2368, 49407, 0]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the missing file when merges.txt is absent', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clip-tok-'));
    try {
      fs.copyFileSync(path.join(clipDir, 'vocab.json'), path.join(dir, 'vocab.json'));
      expect(() => loadClipTokenizer(dir)).toThrow(/merges\.txt is missing/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('html unescape (Python html.unescape rules, as openai CLIP applies them)', () => {
  // Expected strings printed by CPython 3.11's html.unescape.
  it.each([
    ['salt &amp; pepper &lt;3', 'salt & pepper <3'],
    ['&ampx &notit; &notin; &#39;&#x27;&#X41;', "&x \u00acit; \u2209 ''A"],
    ['&#128; &#0; &#xD800; &#1114112; &#1; &#65535;', '\u20ac \ufffd \ufffd \ufffd  '],
    ['&amp;lt;', '&lt;'],
    ['&unknown; & &#; &;', '&unknown; & &#; &;'],
    ['&AMP &copy2024 &Copy; &nbsp;', '& \u00a92024 &Copy; \u00a0'],
    // Python drops references to controls and noncharacters (WHATWG would keep them); C1 is remapped, CR kept.
    ['&#127;&#x9F;&#13;&#11;&#xFDD0;&#x1FFFF;|', '\u0178\r|'],
    ['&amp-foo &#65 &#x41g &notit &ampamp;', '&-foo A Ag \u00acit &amp;'],
    // One reference at a time: what a dropped reference joins is not decoded in the same pass.
    [`&am&#1;p; &#x110000; &${'a'.repeat(40)};`, `&amp; \ufffd &${'a'.repeat(40)};`],
  ])('%j', (input, expected) => {
    expect(htmlUnescape(input)).toBe(expected);
  });
});

describe('T5 tokenizer (tokenizer.json + sentencepiece charsmap)', () => {
  const t5 = loadT5Tokenizer(t5Dir);

  it('has pad 0 and eos 1', () => {
    expect([t5.padId, t5.eosId]).toEqual([0, 1]);
  });

  // Reference: sentencepiece C++ on the reconstructed model (fixtures/README.md §2), all 29 prompts,
  // framed ids[:N-1] + [1] and padded with 0: N = 512 (dev) and 256 (schnell).
  it.each(golden.prompts.map((p) => [p.key, p] as const))('%s: ids match at 512 and 256', (_key, p) => {
    expect(t5.encode(p.text)).toEqual(p.t5.sp_ids_no_eos);
    expect(t5.inputIds(p.text, 512)).toEqual(p.t5.input_ids_512);
    expect(t5.inputIds(p.text, 256)).toEqual(p.t5.input_ids_256);
  });

  it('reproduces the published T5 ids', () => {
    expect(t5.encode('translate English to German: The house is wonderful.')).toEqual([
      13959, 1566, 12, 2968, 10, 37, 629, 19, 1627, 5,
    ]);
    expect(t5.encode('Hello world')).toEqual([8774, 296]);
  });

  it('applies the real charsmap where NFKC (the library default) would differ', () => {
    const json = JSON.parse(fs.readFileSync(path.join(t5Dir, 'tokenizer.json'), 'utf8')) as {
      normalizer: { normalizers: { type: string; precompiled_charsmap?: string }[] };
    };
    const b64 = json.normalizer.normalizers.find((n) => n.type === 'Precompiled')!.precompiled_charsmap!;
    const map = PrecompiledCharsmap.fromBase64(b64);
    // Classic NFKC cases agree...
    expect(map.normalize('ＡＢＣ ① ﬁ ｶ …')).toBe('ABC 1 fi カ ...');
    // ...but the charsmap predates Unicode 13: U+32FF (square era name Reiwa) stays, NFKC gives 令和.
    expect('\u32ff'.normalize('NFKC')).toBe('令和');
    expect(map.normalize('\u32ff')).toBe('\u32ff');
    // U+1FBF5 (segmented digit five, Unicode 13): NFKC would make it "5"; sentencepiece gives <unk>.
    expect('\u{1FBF5}'.normalize('NFKC')).toBe('5');
    expect(t5.encode('\u{1FBF5}')).toEqual([3, 2]);
    expect(t5.encode('5')).not.toEqual([3, 2]);
  });

  it('explains a folder without tokenizer.json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 't5-tok-'));
    try {
      fs.writeFileSync(path.join(dir, 'spiece.model'), '');
      expect(() => loadT5Tokenizer(dir)).toThrow(/tokenizer\.json is missing \(spiece\.model alone is not supported\)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
