import path from 'node:path';
import sharp from 'sharp';
import { dilateCross, readBlackPixels } from '../../rag/mask.ts';
import type { Nchw } from '../graphs/vae-codec.ts';

/** An 8-bit RGB image, row-major HWC. */
export interface Rgb8 {
  data: Uint8Array;
  width: number;
  height: number;
}

/** diffusers' postprocess of a decoded image: (x/2 + 0.5) clamped to [0, 1], ·255, rounded, HWC. */
export function toRgb8(image: Nchw, index = 0): Rgb8 {
  const [, c, height, width] = image.shape;
  if (c !== 3) throw new Error(`expected an RGB image, got ${c} channels`);
  const plane = height * width;
  const base = index * 3 * plane;
  const data = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = Math.min(1, Math.max(0, image.data[base + ch * plane + p]! / 2 + 0.5));
      data[p * 3 + ch] = Math.round(v * 255);
    }
  }
  return { data, width, height };
}

export type ImageFormat = 'png' | 'webp' | 'jpeg';

/** The format a file name asks for; undefined for an extension we do not write. */
export function formatOf(file: string): ImageFormat | undefined {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.png') return 'png';
  if (ext === '.webp') return 'webp';
  if (ext === '.jpg' || ext === '.jpeg') return 'jpeg';
  return undefined;
}

export async function encodeImage(img: Rgb8, format: ImageFormat = 'png'): Promise<Uint8Array> {
  const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  // WebP stays lossless (a repaint composites onto these pixels); JPEG is for sharing, never for a parent image.
  const buf =
    format === 'webp'
      ? await s.webp({ lossless: true }).toBuffer()
      : format === 'jpeg'
        ? await s.jpeg({ quality: 95 }).toBuffer()
        : await s.png().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Any image sharp reads (a path or bytes) as 8-bit RGB. */
export async function readRgb8(source: string | Uint8Array): Promise<Rgb8> {
  const { data, info } = await sharp(source)
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected an RGB image, got ${info.channels} channels`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
  };
}

/**
 * The repaint area in pixels as RAG sees it: the mask's black pixels grown by the 10-px cross dilation
 * (rag/mask.ts), at the image size (nearest neighbour when the mask has another size). 1 = repaint.
 */
export async function repaintPixels(mask: string | Uint8Array, width: number, height: number): Promise<Uint8Array> {
  const m = await readBlackPixels(mask);
  const grown = dilateCross(m.black, m.width, m.height);
  if (m.width === width && m.height === height) return grown;
  const out = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(m.height - 1, Math.floor(((y + 0.5) * m.height) / height));
    for (let x = 0; x < width; x++)
      out[y * width + x] = grown[sy * m.width + Math.min(m.width - 1, Math.floor(((x + 0.5) * m.width) / width))]!;
  }
  return out;
}

/** `painted` inside the repaint area, `parent` everywhere else, so nothing outside the dilated mask changes. */
export function compositeOutside(painted: Rgb8, parent: Rgb8, area: Uint8Array): Rgb8 {
  if (painted.width !== parent.width || painted.height !== parent.height) {
    throw new Error(
      `the parent image is ${parent.width}×${parent.height} but the repaint is ${painted.width}×${painted.height}`,
    );
  }
  const data = parent.data.slice();
  for (let p = 0; p < area.length; p++) {
    if (area[p]) data.set(painted.data.subarray(p * 3, p * 3 + 3), p * 3);
  }
  return { data, width: painted.width, height: painted.height };
}
