/**
 * Repainting masks (RAG-SPEC.md §4.3). Convention, as upstream: BLACK pixels (luma ≤ 128) = the area to
 * repaint, WHITE = keep. Most inpainting tools use the opposite; every mask this project writes or reads
 * follows RAG's convention.
 *
 * Token mask, exactly as upstream's prepare_Repainting:
 *   1. luma (Pillow's "L" conversion of RGB; alpha ignored), black = luma ≤ 128;
 *   2. black grows by 10 iterations of a 3×3 cross (scipy binary_dilation) = every pixel within city-block
 *      distance 10 of a black pixel, nothing outside the image counts;
 *   3. resized to W×H when the mask has another size (upstream: PIL bicubic + dithering; here nearest
 *      neighbour on the binary mask: a documented difference, avoided by supplying W×H masks);
 *   4. token (r, c) takes the pixel (min(16r+8, H−1), min(16c+8, W−1)) (F.interpolate "nearest-exact");
 *   5. the bounding box of repaint tokens gives Repainting_HB_n_offset / m_offset, and its crop the mask.
 */
import sharp, { type OutputInfo } from 'sharp';

export const MASK_THRESHOLD = 128;
export const MASK_DILATION = 10;

export interface TokenMask {
  /** Token grid: rows = H/16, cols = W/16. */
  rows: number;
  cols: number;
  /** 1 = repaint, row-major rows × cols. */
  tokens: Uint8Array;
  /** Bounding box of the repaint tokens: rows [n0, n0+bh), cols [m0, m0+bw); null when nothing is black. */
  bbox: { n0: number; bh: number; m0: number; bw: number } | null;
  /** tokens cropped to bbox (bh × bw), upstream's `Repainting` tensor. */
  crop: Uint8Array;
  counts: { blackPixels: number; dilatedPixels: number; repaintTokens: number };
  /** Size of the mask image as read, before any resize. */
  source: { width: number; height: number };
}

export class MaskError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MaskError';
  }
}

/** Pillow's RGB → L: (R·19595 + G·38470 + B·7471 + 0x8000) >> 16. */
function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** Reads any image sharp understands into a 0/1 "black" bitmap (1 = luma ≤ 128). */
export async function readBlackPixels(
  source: string | Uint8Array,
): Promise<{ black: Uint8Array; width: number; height: number }> {
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await sharp(source).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    const what = typeof source === 'string' ? `"${source}"` : 'the mask data';
    throw new MaskError(`cannot read the repainting mask ${what}: ${(e as Error).message}`);
  }
  const { data, info } = raw;
  const { width, height, channels } = info;
  const black = new Uint8Array(width * height);
  for (let i = 0; i < width * height; i++) {
    const o = i * channels;
    const l = channels >= 3 ? luma(data[o]!, data[o + 1]!, data[o + 2]!) : data[o]!;
    black[i] = l <= MASK_THRESHOLD ? 1 : 0;
  }
  return { black, width, height };
}

/**
 * Grows the black area by `iterations` steps of a 3×3 cross, which equals "city-block distance ≤ iterations"
 * (monotone paths stay inside the image, so the border never matters). Two-pass distance transform.
 */
export function dilateCross(black: Uint8Array, width: number, height: number, iterations = MASK_DILATION): Uint8Array {
  const far = iterations + 1;
  const d = new Int32Array(width * height);
  for (let i = 0; i < d.length; i++) d[i] = black[i] ? 0 : far;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      let v = d[i]!;
      if (x > 0) v = Math.min(v, d[i - 1]! + 1);
      if (y > 0) v = Math.min(v, d[i - width]! + 1);
      d[i] = v;
    }
  }
  for (let y = height - 1; y >= 0; y--) {
    for (let x = width - 1; x >= 0; x--) {
      const i = y * width + x;
      let v = d[i]!;
      if (x < width - 1) v = Math.min(v, d[i + 1]! + 1);
      if (y < height - 1) v = Math.min(v, d[i + width]! + 1);
      d[i] = v;
    }
  }
  const out = new Uint8Array(width * height);
  for (let i = 0; i < d.length; i++) out[i] = d[i]! <= iterations ? 1 : 0;
  return out;
}

function resizeNearest(src: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array {
  const out = new Uint8Array(dw * dh);
  for (let y = 0; y < dh; y++) {
    const sy = Math.min(sh - 1, Math.floor(((y + 0.5) * sh) / dh));
    for (let x = 0; x < dw; x++) {
      const sx = Math.min(sw - 1, Math.floor(((x + 0.5) * sw) / dw));
      out[y * dw + x] = src[sy * sw + sx]!;
    }
  }
  return out;
}

/** Token mask of a repainting mask (a PNG path or bytes) for an image of width × height (multiples of 16). */
export async function maskToTokens(source: string | Uint8Array, width: number, height: number): Promise<TokenMask> {
  if (width % 16 || height % 16) throw new MaskError(`image size ${width}×${height} is not a multiple of 16`);
  const img = await readBlackPixels(source);
  return blackToTokens(img.black, img.width, img.height, width, height);
}

/** The pure part of maskToTokens, on a 0/1 black bitmap of maskWidth × maskHeight. */
export function blackToTokens(
  black: Uint8Array,
  maskWidth: number,
  maskHeight: number,
  width: number,
  height: number,
): TokenMask {
  let blackPixels = 0;
  for (const v of black) blackPixels += v;
  let grown = dilateCross(black, maskWidth, maskHeight);
  let dilatedPixels = 0;
  for (const v of grown) dilatedPixels += v;
  if (maskWidth !== width || maskHeight !== height) grown = resizeNearest(grown, maskWidth, maskHeight, width, height);
  const rows = height / 16;
  const cols = width / 16;
  const tokens = new Uint8Array(rows * cols);
  let n0 = Infinity,
    n1 = -1,
    m0 = Infinity,
    m1 = -1,
    repaintTokens = 0;
  for (let r = 0; r < rows; r++) {
    const py = Math.min(16 * r + 8, height - 1);
    for (let c = 0; c < cols; c++) {
      const px = Math.min(16 * c + 8, width - 1);
      const v = grown[py * width + px]!;
      tokens[r * cols + c] = v;
      if (v) {
        repaintTokens++;
        n0 = Math.min(n0, r);
        n1 = Math.max(n1, r);
        m0 = Math.min(m0, c);
        m1 = Math.max(m1, c);
      }
    }
  }
  const counts = { blackPixels, dilatedPixels, repaintTokens };
  const source = { width: maskWidth, height: maskHeight };
  if (!repaintTokens) return { rows, cols, tokens, bbox: null, crop: new Uint8Array(0), counts, source };
  const bbox = { n0, bh: n1 - n0 + 1, m0, bw: m1 - m0 + 1 };
  const crop = new Uint8Array(bbox.bh * bbox.bw);
  for (let r = 0; r < bbox.bh; r++)
    for (let c = 0; c < bbox.bw; c++) crop[r * bbox.bw + c] = tokens[(n0 + r) * cols + m0 + c]!;
  return { rows, cols, tokens, bbox, crop, counts, source };
}

/** A rectangle in image pixels, half-open: [x, x+w) × [y, y+h). */
export interface PixelRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Writes a RAG repainting mask: white (keep) everywhere, black (repaint) inside the rectangles. 8-bit grey PNG. */
export async function rectsToMaskPng(rects: PixelRect[], width: number, height: number): Promise<Buffer> {
  const px = new Uint8Array(width * height).fill(255);
  for (const r of rects) {
    const x0 = Math.max(0, Math.floor(r.x));
    const y0 = Math.max(0, Math.floor(r.y));
    const x1 = Math.min(width, Math.ceil(r.x + r.w));
    const y1 = Math.min(height, Math.ceil(r.y + r.h));
    for (let y = y0; y < y1; y++) px.fill(0, y * width + x0, y * width + Math.max(x0, x1));
  }
  return sharp(px, { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
}
