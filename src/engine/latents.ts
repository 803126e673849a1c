/** FLUX's latent layout: geometry of an image's latent, 2×2 packing into tokens, and position ids. */

/** Sizes of FLUX's latent for an image: 16 channels at H/8 × W/8, packed to (H/16)·(W/16) tokens of 64. */
export interface LatentGeometry {
  channels: number;
  /** Unpacked latent height and width (H/8, W/8). */
  height: number;
  width: number;
  /** Token grid (H/16, W/16) and its size. */
  rows: number;
  cols: number;
  tokens: number;
  /** Packed feature size: channels · 4. */
  packedChannels: number;
}

export function latentGeometry(imageWidth: number, imageHeight: number, channels = 16): LatentGeometry {
  for (const [name, v] of [
    ['width', imageWidth],
    ['height', imageHeight],
  ] as const) {
    if (!Number.isInteger(v) || v < 16 || v % 16 !== 0)
      throw new RangeError(`image ${name} must be a positive multiple of 16 (got ${v})`);
  }
  const rows = imageHeight / 16;
  const cols = imageWidth / 16;
  return { channels, height: rows * 2, width: cols * 2, rows, cols, tokens: rows * cols, packedChannels: channels * 4 };
}

/**
 * FluxPipeline._pack_latents: (B, C, 2h, 2w) → (B, h·w, 4C) with
 * P[b, r·w + c, ch·4 + dy·2 + dx] = X[b, ch, 2r + dy, 2c + dx].
 */
export function packLatents(
  x: Float32Array,
  batch: number,
  channels: number,
  height: number,
  width: number,
): Float32Array {
  if (height % 2 !== 0 || width % 2 !== 0)
    throw new RangeError(`latent height and width must be even (got ${height}×${width})`);
  if (x.length !== batch * channels * height * width) {
    throw new RangeError(
      `packLatents: ${x.length} values do not make a (${batch}, ${channels}, ${height}, ${width}) latent`,
    );
  }
  const h = height / 2;
  const w = width / 2;
  const out = new Float32Array(x.length);
  let o = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        for (let ch = 0; ch < channels; ch++) {
          const base = ((b * channels + ch) * height + 2 * r) * width + 2 * c;
          out[o++] = x[base]!;
          out[o++] = x[base + 1]!;
          out[o++] = x[base + width]!;
          out[o++] = x[base + width + 1]!;
        }
      }
    }
  }
  return out;
}

/** FluxPipeline._unpack_latents: the exact inverse of packLatents. */
export function unpackLatents(
  p: Float32Array,
  batch: number,
  channels: number,
  height: number,
  width: number,
): Float32Array {
  if (height % 2 !== 0 || width % 2 !== 0)
    throw new RangeError(`latent height and width must be even (got ${height}×${width})`);
  if (p.length !== batch * channels * height * width) {
    throw new RangeError(
      `unpackLatents: ${p.length} values do not make a (${batch}, ${channels}, ${height}, ${width}) latent`,
    );
  }
  const h = height / 2;
  const w = width / 2;
  const out = new Float32Array(p.length);
  let i = 0;
  for (let b = 0; b < batch; b++) {
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        for (let ch = 0; ch < channels; ch++) {
          const base = ((b * channels + ch) * height + 2 * r) * width + 2 * c;
          out[base] = p[i++]!;
          out[base + 1] = p[i++]!;
          out[base + width] = p[i++]!;
          out[base + width + 1] = p[i++]!;
        }
      }
    }
  }
  return out;
}

/** FluxPipeline._prepare_latent_image_ids for an h × w token grid: (h·w, 3) rows (0, r, c). */
export function latentImageIds(rows: number, cols: number): Float32Array {
  const ids = new Float32Array(rows * cols * 3);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const t = (r * cols + c) * 3;
      ids[t + 1] = r;
      ids[t + 2] = c;
    }
  }
  return ids;
}

/** Text position ids: zeros (L, 3). */
export function textIds(length: number): Float32Array {
  return new Float32Array(length * 3);
}
