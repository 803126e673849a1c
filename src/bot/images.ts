import sharp, { type OverlayOptions } from 'sharp';

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
  const data = await sharp(png)
    .resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true })
    .webp({ quality: 70 })
    .toBuffer();
  return { name: 'preview.webp', data };
}

export interface HistoryEntry {
  /** "v1", "v2", … */
  title: string;
  /** The instruction that made this version. */
  label: string;
  /** The version's picture (its image, or its layout when it was never painted); undefined when its files are gone. */
  png?: Buffer;
}

const THUMB = 160;
const LABEL_LINES = 3;
const FONT_PX = 13;
const FONT = 'DejaVu Sans, Verdana, sans-serif';

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** Word-wraps `text` into at most `lines` lines of about `perLine` characters, the last one cut with "…". */
function wrap(text: string, perLine: number, lines: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const w of text.replace(/\s+/g, ' ').trim().split(' ')) {
    const next = cur ? `${cur} ${w}` : w;
    if (next.length <= perLine) cur = next;
    else {
      if (cur) out.push(cur);
      cur = w.length > perLine ? `${w.slice(0, perLine - 1)}…` : w;
    }
  }
  if (cur) out.push(cur);
  if (out.length > lines) {
    const kept = out.slice(0, lines);
    kept[lines - 1] = `${kept[lines - 1]!.slice(0, perLine - 1)}…`;
    return kept;
  }
  return out;
}

/**
 * The history picture: one thumbnail per version, oldest first, in rows of five, each with its number and the
 * instruction that made it underneath; a version whose files are gone is a grey tile that says so.
 */
export async function renderHistory(entries: HistoryEntry[]): Promise<Buffer> {
  const cols = Math.min(5, Math.max(1, entries.length));
  const rows = Math.ceil(entries.length / cols);
  const gap = 12;
  const labelH = (LABEL_LINES + 1) * (FONT_PX + 4) + 6;
  const cellW = THUMB,
    cellH = THUMB + labelH;
  const width = gap + cols * (cellW + gap),
    height = gap + rows * (cellH + gap);
  const composites: OverlayOptions[] = [];
  const svg: string[] = [];
  const perLine = Math.floor(THUMB / (FONT_PX * 0.55));
  for (const [i, e] of entries.entries()) {
    const left = gap + (i % cols) * (cellW + gap),
      top = gap + Math.floor(i / cols) * (cellH + gap);
    let thumb: Buffer | undefined;
    if (e.png) {
      thumb = await sharp(e.png)
        .resize({ width: THUMB, height: THUMB, fit: 'contain', background: '#202225' })
        .png()
        .toBuffer()
        .catch(() => undefined);
    }
    if (thumb) composites.push({ input: thumb, left, top });
    else {
      svg.push(`<rect x="${left}" y="${top}" width="${THUMB}" height="${THUMB}" fill="#4f545c"/>`);
      svg.push(
        `<text x="${left + THUMB / 2}" y="${top + THUMB / 2}" text-anchor="middle" font-family="${FONT}" font-size="${FONT_PX}" fill="#dcddde">image deleted</text>`,
      );
    }
    const lines = [e.title, ...wrap(e.label, perLine, LABEL_LINES)];
    lines.forEach((line, k) => {
      const y = top + THUMB + 4 + (k + 1) * (FONT_PX + 4);
      svg.push(
        `<text x="${left}" y="${y}" font-family="${FONT}" font-size="${FONT_PX}" ${k === 0 ? 'font-weight="bold" ' : ''}fill="#ffffff">${escapeXml(line)}</text>`,
      );
    });
  }
  const overlay = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${svg.join('')}</svg>`,
  );
  return sharp({ create: { width, height, channels: 3, background: '#2f3136' } })
    .composite([...composites, { input: overlay, left: 0, top: 0 }])
    .png()
    .toBuffer();
}
