/**
 * SentencePiece's "precompiled charsmap" normaliser, interpreted exactly as sentencepiece's C++
 * `Normalizer::NormalizePrefix` does: at each position take the longest rule of the double-array trie
 * (darts-clone layout) that matches the UTF-8 bytes, emit its replacement, otherwise copy one UTF-8
 * character (a malformed byte becomes U+FFFD).
 *
 * Why our own: @huggingface/tokenizers 0.2.0 does not read the charsmap; it approximates it with NFKC
 * plus a fixed set of control/space replacements. T5's reference ids come from sentencepiece running
 * the real charsmap (`nmt_nfkc`), so the exact table is what gives the same ids on every input.
 *
 * Blob layout: u32le trie size in bytes, the trie (u32le units), then NUL-terminated UTF-8 strings
 * addressed by the values stored in the trie's leaves.
 */
export class PrecompiledCharsmap {
  private readonly trie: Uint32Array;
  private readonly strings: Buffer;

  constructor(blob: Uint8Array) {
    if (blob.byteLength < 4) throw new Error('precompiled charsmap is empty or truncated');
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieBytes = view.getUint32(0, true);
    if (trieBytes % 4 !== 0 || 4 + trieBytes > blob.byteLength) {
      throw new Error(`precompiled charsmap: trie size ${trieBytes} does not fit a blob of ${blob.byteLength} bytes`);
    }
    this.trie = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < this.trie.length; i++) this.trie[i] = view.getUint32(4 + 4 * i, true);
    this.strings = Buffer.from(blob.buffer, blob.byteOffset + 4 + trieBytes, blob.byteLength - 4 - trieBytes);
  }

  static fromBase64(b64: string): PrecompiledCharsmap {
    return new PrecompiledCharsmap(Buffer.from(b64, 'base64'));
  }

  /** Longest rule matching `bytes` from `start`: [length in bytes, replacement offset], or undefined. */
  private longestMatch(bytes: Uint8Array, start: number): [number, number] | undefined {
    const unitAt = (pos: number): number => {
      const u = this.trie[pos];
      if (u === undefined) throw new Error('precompiled charsmap: trie index out of range (corrupt charsmap)');
      return u;
    };
    // darts-clone unit fields
    const offset = (u: number): number => (u >>> 10) << ((u & (1 << 9)) >>> 6);
    const label = (u: number): number => u & ((1 << 31) | 0xff);
    const hasLeaf = (u: number): boolean => ((u >>> 8) & 1) === 1;
    const value = (u: number): number => u & 0x7fffffff;

    let best: [number, number] | undefined;
    let pos = offset(unitAt(0));
    for (let i = start; i < bytes.length; i++) {
      const b = bytes[i]!;
      pos ^= b;
      if (pos >= this.trie.length) break;
      const u = unitAt(pos);
      if (label(u) >>> 0 !== b) break;
      pos ^= offset(u);
      if (hasLeaf(u)) best = [i - start + 1, value(unitAt(pos))];
    }
    return best;
  }

  private replacement(at: number): Buffer {
    const end = this.strings.indexOf(0, at);
    return this.strings.subarray(at, end < 0 ? this.strings.length : end);
  }

  normalize(text: string): string {
    const bytes = Buffer.from(text, 'utf8');
    const out: Buffer[] = [];
    let i = 0;
    while (i < bytes.length) {
      const match = this.longestMatch(bytes, i);
      if (match) {
        out.push(this.replacement(match[1]));
        i += match[0];
        continue;
      }
      const len = utf8Length(bytes, i);
      if (len === 0) {
        out.push(REPLACEMENT_CHAR);
        i += 1;
      } else {
        out.push(bytes.subarray(i, i + len));
        i += len;
      }
    }
    return Buffer.concat(out).toString('utf8');
  }
}

const REPLACEMENT_CHAR = Buffer.from('\ufffd', 'utf8');

/** Length of the well-formed UTF-8 sequence at `i`, or 0 when it is malformed. */
function utf8Length(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number): boolean => {
    const x = b[i + k];
    return x !== undefined && (x & 0xc0) === 0x80;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c >= 0xf0 && c <= 0xf4) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
