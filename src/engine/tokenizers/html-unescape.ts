import { decodeHTML, DecodingMode } from 'entities';

/**
 * HTML character-reference decoding with the exact results of Python's `html.unescape`, because openai's CLIP
 * tokenizer (the reference for the CLIP ids) runs it twice on every prompt.
 *
 * Python finds references with the regex below and decodes each by the WHATWG rules for text: named references
 * from the HTML5 table, an unknown name by its longest legacy prefix ("&ampx" → "&x"), numeric references with
 * the Windows-1252 remap of 0x80–0x9F and U+FFFD for NUL, surrogates and values past U+10FFFF. The `entities`
 * package decodes exactly that in its legacy (text) mode. One rule is Python's own: where WHATWG keeps the code
 * point of a reference to a control or a noncharacter (a parse error, not a replacement), Python drops it
 * ("&#1;" → ""), so those are removed here before `entities` sees them. References are matched one at a time
 * with Python's pattern, so text freed by a dropped reference is not decoded again in the same pass.
 */
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Code points a numeric reference may not produce in Python (html._invalid_codepoints, less the C1 remap). */
function droppedByPython(ref: string): boolean {
  const hex = ref[1] === 'x' || ref[1] === 'X';
  const n = Number.parseInt(ref.slice(hex ? 2 : 1).replace(/;$/, ''), hex ? 16 : 10);
  return (
    (n >= 0x1 && n <= 0x8) ||
    n === 0xb ||
    (n >= 0xe && n <= 0x1f) ||
    n === 0x7f ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n <= 0x10ffff && (n & 0xfffe) === 0xfffe)
  );
}

export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (m: string, ref: string) =>
    ref.startsWith('#') && droppedByPython(ref) ? '' : decodeHTML(m, DecodingMode.Legacy),
  );
}
