import { HTML5_NAMED_REFERENCES } from './html-entities.ts';

/**
 * HTML character-reference decoding with the exact rules of Python's `html.unescape`, because openai's
 * CLIP tokenizer (the reference for the CLIP ids) runs it twice on every prompt: numeric references with
 * the WHATWG replacements for invalid code points, named references from the HTML5 table, and for an
 * unknown name the longest known prefix (so "&ampx" becomes "&x").
 */
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

// Windows-1252 meanings that HTML gives to references in 0x80-0x9F, plus NUL and CR.
const INVALID_CHARREFS: Readonly<Record<number, string>> = {
  0x00: '\ufffd', 0x0d: '\r', 0x80: '\u20ac', 0x81: '\x81', 0x82: '\u201a', 0x83: '\u0192', 0x84: '\u201e',
  0x85: '\u2026', 0x86: '\u2020', 0x87: '\u2021', 0x88: '\u02c6', 0x89: '\u2030', 0x8a: '\u0160', 0x8b: '\u2039',
  0x8c: '\u0152', 0x8d: '\x8d', 0x8e: '\u017d', 0x8f: '\x8f', 0x90: '\x90', 0x91: '\u2018', 0x92: '\u2019',
  0x93: '\u201c', 0x94: '\u201d', 0x95: '\u2022', 0x96: '\u2013', 0x97: '\u2014', 0x98: '\u02dc', 0x99: '\u2122',
  0x9a: '\u0161', 0x9b: '\u203a', 0x9c: '\u0153', 0x9d: '\x9d', 0x9e: '\u017e', 0x9f: '\u0178',
};

/** Code points a reference may not produce; Python drops them. */
function isDroppedCodePoint(n: number): boolean {
  return (
    (n >= 0x1 && n <= 0x8) ||
    n === 0xb ||
    (n >= 0xe && n <= 0x1f) ||
    (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe
  );
}

function numeric(ref: string): string {
  const hex = ref[1] === 'x' || ref[1] === 'X';
  const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
  const n = Number.parseInt(digits, hex ? 16 : 10);
  const invalid = INVALID_CHARREFS[n];
  if (invalid !== undefined) return invalid;
  if ((n >= 0xd800 && n <= 0xdfff) || !(n <= 0x10ffff)) return '\ufffd';
  if (isDroppedCodePoint(n)) return '';
  return String.fromCodePoint(n);
}

function named(ref: string): string {
  const whole = HTML5_NAMED_REFERENCES[ref];
  if (whole !== undefined) return whole;
  for (let len = ref.length - 1; len > 1; len--) {
    const prefix = HTML5_NAMED_REFERENCES[ref.slice(0, len)];
    if (prefix !== undefined) return prefix + ref.slice(len);
  }
  return `&${ref}`;
}

export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_m, ref: string) => (ref.startsWith('#') ? numeric(ref) : named(ref)));
}
