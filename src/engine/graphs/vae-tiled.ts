/**
 * The VAE decode in overlapping tiles, so a large image never holds the decoder's full-size activations: at 1024²
 * those are a few [128, 1024, 1024] float32 maps (≈ 2 GB), which ORT keeps in an arena of their own after the
 * decode. Tiles of 64 latent pixels (512² image pixels) with 16 of overlap, blended with linear ramps across the
 * overlap, cut that to ≈ a quarter. The decoder's mid-block attention and group norms then see one tile instead of
 * the whole latent, so a tiled image differs slightly from the untiled one (test/engine/vae-tiled.test.ts bounds it).
 */
import type { Nchw, VaeCodec } from './vae-codec.ts';

export interface TileOptions {
  /** Tile edge in latent pixels (×8 in the image); default 64. */
  tile?: number;
  /** Overlap between neighbouring tiles in latent pixels; default 16. */
  overlap?: number;
}

export interface DecodeOptions extends TileOptions {
  /** 'auto' (default): tile when the untiled decode's activations would pass `budgetBytes`; 'never'; 'always'. */
  tiling?: 'auto' | 'never' | 'always';
  /** Memory the decode may use (free GPU or host memory); default TILE_ABOVE_BYTES. */
  budgetBytes?: number;
}

/** Tiles are used above this much estimated decoder activation memory: images larger than ≈ 720². */
export const TILE_ABOVE_BYTES = 2 ** 30;

/** The untiled decoder's activations: about four [128, H, W] float32 maps at the full image size. */
export function decodeActivationBytes(latentH: number, latentW: number): number {
  return 4 * 128 * (8 * latentH) * (8 * latentW) * 4;
}

/** Start offsets covering `size` with tiles of `tile` overlapping by at least `overlap`. */
export function tileStarts(size: number, tile: number, overlap: number): number[] {
  if (size <= tile) return [0];
  const stride = tile - overlap;
  const n = Math.ceil((size - overlap) / stride);
  return Array.from({ length: n }, (_, i) => Math.min(i * stride, size - tile));
}

/** Blend weight along one axis of a tile of `len` image pixels: ramps up over `ramp` pixels at inner edges. */
function ramp(len: number, ramp: number, atStart: boolean, atEnd: boolean): Float32Array {
  const w = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    const up = atStart ? 1 : Math.min(1, (i + 0.5) / ramp);
    const down = atEnd ? 1 : Math.min(1, (len - i - 0.5) / ramp);
    w[i] = Math.min(up, down);
  }
  return w;
}

function crop(latent: Nchw, y: number, x: number, h: number, w: number): Nchw {
  const [B, C, H, W] = latent.shape;
  const out = new Float32Array(B * C * h * w);
  for (let bc = 0; bc < B * C; bc++)
    for (let r = 0; r < h; r++) {
      const from = bc * H * W + (y + r) * W + x;
      out.set(latent.data.subarray(from, from + w), bc * h * w + r * w);
    }
  return { data: out, shape: [B, C, h, w] };
}

/** Decodes `latent` tile by tile and blends the tiles into one image [B, 3, 8h, 8w]. */
export async function decodeTiled(codec: VaeCodec, latent: Nchw, o: TileOptions = {}): Promise<Nchw> {
  const [B, , h, w] = latent.shape;
  const tile = o.tile ?? 64;
  const overlap = Math.min(o.overlap ?? 16, tile - 1);
  const ys = tileStarts(h, Math.min(tile, h), overlap);
  const xs = tileStarts(w, Math.min(tile, w), overlap);
  const H = 8 * h;
  const W = 8 * w;
  const sum = new Float32Array(B * 3 * H * W);
  const weight = new Float32Array(H * W);
  for (const y of ys)
    for (const x of xs) {
      const th = Math.min(tile, h);
      const tw = Math.min(tile, w);
      const img = await codec.decode(crop(latent, y, x, th, tw));
      const [, , IH, IW] = img.shape;
      const wy = ramp(IH, 8 * overlap, y === 0, y + th >= h);
      const wx = ramp(IW, 8 * overlap, x === 0, x + tw >= w);
      for (let r = 0; r < IH; r++) {
        const row = (8 * y + r) * W + 8 * x;
        for (let c = 0; c < IW; c++) weight[row + c]! += wy[r]! * wx[c]!;
        for (let bc = 0; bc < B * 3; bc++) {
          const dst = bc * H * W + row;
          const src = bc * IH * IW + r * IW;
          for (let c = 0; c < IW; c++) sum[dst + c]! += img.data[src + c]! * wy[r]! * wx[c]!;
        }
      }
    }
  for (let bc = 0; bc < B * 3; bc++) for (let p = 0; p < H * W; p++) sum[bc * H * W + p]! /= weight[p]!;
  return { data: sum, shape: [B, 3, H, W] };
}

/** Whether a decode of this latent is tiled under `o`. */
export function usesTiles(latent: Nchw, o: DecodeOptions = {}): boolean {
  const mode = o.tiling ?? 'auto';
  if (mode !== 'auto') return mode === 'always';
  const [, , h, w] = latent.shape;
  return decodeActivationBytes(h, w) > (o.budgetBytes ?? TILE_ABOVE_BYTES);
}

/** The pipeline's decode: tiled when the image is large or memory is short (usesTiles), else in one run. */
export function decodeVae(codec: VaeCodec, latent: Nchw, o: DecodeOptions = {}): Promise<Nchw> {
  return usesTiles(latent, o) ? decodeTiled(codec, latent, o) : codec.decode(latent);
}
