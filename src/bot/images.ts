import sharp from 'sharp';

export interface Upload {
  name: string;
  data: Buffer;
}

/**
 * The image as Discord will take it: the PNG when it fits the upload limit, otherwise WebP at falling
 * quality, and as a last resort smaller. `baseName` has no extension.
 */
export async function fitAttachment(png: Buffer, limit: number, baseName = 'image'): Promise<Upload> {
  if (png.length <= limit) return { name: `${baseName}.png`, data: png };
  for (const quality of [92, 80, 65]) {
    const webp = await sharp(png).webp({ quality }).toBuffer();
    if (webp.length <= limit) return { name: `${baseName}.webp`, data: webp };
  }
  const meta = await sharp(png).metadata();
  let width = meta.width ?? 1024;
  for (;;) {
    width = Math.max(64, Math.floor(width * 0.75));
    const webp = await sharp(png).resize({ width }).webp({ quality: 65 }).toBuffer();
    if (webp.length <= limit || width === 64) return { name: `${baseName}.webp`, data: webp };
  }
}

/** A small preview for progress messages: cheap to upload every few seconds. */
export async function previewAttachment(png: Buffer, maxSide = 384): Promise<Upload> {
  const data = await sharp(png).resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true }).webp({ quality: 70 }).toBuffer();
  return { name: 'preview.webp', data };
}
