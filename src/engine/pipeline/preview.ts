import sharp from 'sharp';
import { gaussian } from '../noise.ts';
import { unpackLatents } from '../latents.ts';
import type { Nchw, VaeCodec } from '../graphs/vae-codec.ts';

/**
 * Cheap progress previews: a linear map from the 16 latent channels (plus a bias) to RGB, applied per latent
 * pixel, so a preview costs microseconds instead of a VAE decode. The map is fitted to this checkpoint's own
 * decoder once: decode one small random latent, average each 8×8 output block, least squares (ridge 1e-3).
 * It shows colours and layout, not detail; the final image always goes through the VAE. (How well a linear map
 * explains a decoder depends on the decoder: the real FLUX VAE is close to linear in colour, the random tiny test
 * VAE is not at all.)
 */
export class LatentPreview {
  private constructor(
    /** Row-major [3][channels + 1]: weights then bias, in the decoder's [-1, 1] scale. */
    readonly map: Float64Array,
    readonly channels: number,
  ) {}

  static async calibrate(vae: VaeCodec, seed = 20241115): Promise<LatentPreview> {
    const C = vae.latentChannels;
    const latent = gaussian(seed, [1, C, 16, 16]);
    return LatentPreview.fit(latent, C, 16, 16, await vae.decode({ data: latent, shape: [1, C, 16, 16] }));
  }

  /**
   * Least-squares fit (ridge 1e-3) of RGB block averages on latent pixels: `latent` [C, h, w] and the image it
   * decodes to, [1, 3, H, W] with H, W multiples of h, w.
   */
  static fit(latent: Float32Array, C: number, h: number, w: number, img: Nchw): LatentPreview {
    const [, , H, W] = img.shape;
    const sy = H / h;
    const sx = W / w;
    const F = C + 1;
    const ata = new Float64Array(F * F);
    const atb = new Float64Array(3 * F);
    const row = new Float64Array(F);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < C; c++) row[c] = latent[(c * h + y) * w + x]!;
        row[C] = 1;
        for (let a = 0; a < F; a++) for (let b = 0; b < F; b++) ata[a * F + b]! += row[a]! * row[b]!;
        for (let ch = 0; ch < 3; ch++) {
          let sum = 0;
          for (let yy = 0; yy < sy; yy++)
            for (let xx = 0; xx < sx; xx++) sum += img.data[(ch * H + y * sy + yy) * W + x * sx + xx]!;
          const target = sum / (sx * sy);
          for (let a = 0; a < F; a++) atb[ch * F + a]! += row[a]! * target;
        }
      }
    }
    for (let a = 0; a < F; a++) ata[a * F + a]! += 1e-3;
    const map = new Float64Array(3 * F);
    for (let ch = 0; ch < 3; ch++) map.set(solve(ata.slice(), atb.slice(ch * F, (ch + 1) * F), F), ch * F);
    return new LatentPreview(map, C);
  }

  /** RGB [3, 2·rows, 2·cols] in [-1, 1] scale from packed latents [rows·cols, 4·channels]. */
  rgb(packed: Float32Array, rows: number, cols: number): Float32Array {
    const C = this.channels;
    const H = rows * 2;
    const W = cols * 2;
    const lat = unpackLatents(packed, 1, C, H, W);
    const plane = H * W;
    const out = new Float32Array(3 * plane);
    for (let ch = 0; ch < 3; ch++) {
      const m = this.map.subarray(ch * (C + 1), (ch + 1) * (C + 1));
      for (let p = 0; p < plane; p++) {
        let v = m[C]!;
        for (let c = 0; c < C; c++) v += m[c]! * lat[c * plane + p]!;
        out[ch * plane + p] = v;
      }
    }
    return out;
  }

  /** A small PNG (the longer side at most `maxSide`, upscaled to at least 64 px) of the packed latents. */
  async png(packed: Float32Array, rows: number, cols: number, maxSide = 256): Promise<Uint8Array> {
    const rgb = this.rgb(packed, rows, cols);
    const H = rows * 2;
    const W = cols * 2;
    const plane = H * W;
    const px = new Uint8Array(plane * 3);
    for (let p = 0; p < plane; p++) {
      for (let ch = 0; ch < 3; ch++)
        px[p * 3 + ch] = Math.round(Math.min(1, Math.max(0, rgb[ch * plane + p]! / 2 + 0.5)) * 255);
    }
    const scale = Math.min(maxSide / Math.max(W, H), Math.max(1, 64 / Math.max(W, H)));
    let s = sharp(px, { raw: { width: W, height: H, channels: 3 } });
    if (scale !== 1)
      s = s.resize(Math.max(1, Math.round(W * scale)), Math.max(1, Math.round(H * scale)), { kernel: 'nearest' });
    const buf = await s.png({ compressionLevel: 6 }).toBuffer();
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
}

/** Solves the symmetric positive definite system a·x = b (Gaussian elimination with partial pivoting). */
function solve(a: Float64Array, b: Float64Array, n: number): Float64Array {
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r * n + col]!) > Math.abs(a[piv * n + col]!)) piv = r;
    if (piv !== col) {
      for (let k = 0; k < n; k++) [a[col * n + k], a[piv * n + k]] = [a[piv * n + k]!, a[col * n + k]!];
      [b[col], b[piv]] = [b[piv]!, b[col]!];
    }
    const d = a[col * n + col]!;
    for (let r = col + 1; r < n; r++) {
      const f = a[r * n + col]! / d;
      if (f === 0) continue;
      for (let k = col; k < n; k++) a[r * n + k]! -= f * a[col * n + k]!;
      b[r]! -= f * b[col]!;
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r]!;
    for (let k = r + 1; k < n; k++) s -= a[r * n + k]! * x[k]!;
    x[r] = s / a[r * n + r]!;
  }
  return x;
}
