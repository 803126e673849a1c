/**
 * Layout pictures: each region's box and label in its own colour, over a blank canvas or over an image,
 * sized for a Discord preview (512 px wide by default; labels stay readable at ~400 px). Drawn as SVG and
 * rasterised by sharp (librsvg); text needs a system font (fontconfig; Debian: fonts-dejavu-core).
 */
import sharp from 'sharp';
import type { Region, Scene } from '../scene/schema.ts';
import { deriveSoftGrid } from '../paint/soft-grid.ts';

/** Distinct, high-contrast colours (Trubetskoy's list), in order of distinctness. */
export const PALETTE = [
  '#e6194b',
  '#3cb44b',
  '#4363d8',
  '#f58231',
  '#911eb4',
  '#42d4f4',
  '#f032e6',
  '#bfef45',
  '#469990',
  '#9a6324',
  '#800000',
  '#808000',
  '#000075',
  '#fabed4',
  '#dcbeff',
  '#aaffc3',
];

export interface LayoutImageOptions {
  /** A PNG/JPEG/WebP (path or bytes) to draw the boxes over; otherwise a blank canvas. */
  image?: string | Uint8Array;
  /** Output width in pixels (height follows the scene's aspect). Default 512. */
  width?: number;
  /** Also draw the soft-refinement cells as dashed lines. */
  showCells?: boolean;
  /** A legend under the picture with every full label (default true when there are regions). */
  legend?: boolean;
}

const FONT = 'DejaVu Sans, Noto Sans, Liberation Sans, Arial, sans-serif';

function escapeXml(s: string): string {
  // XML 1.0 forbids most control characters; drop them.
  return [...s]
    .filter((c) => {
      const n = c.charCodeAt(0);
      return (n >= 0x20 && n !== 0x7f) || n === 0x09 || n === 0x0a || n === 0x0d;
    })
    .join('')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function textColour(hex: string): string {
  const n = parseInt(hex.slice(1), 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000000' : '#ffffff';
}

/** Cuts text to fit a width, by an average glyph width of DejaVu Sans Bold (≈ 0.63 em). */
function fitText(text: string, maxWidth: number, fontSize: number): string {
  const per = fontSize * 0.63;
  const max = Math.max(1, Math.floor(maxWidth / per));
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1)).trimEnd()}…`;
}

export async function renderLayout(scene: Scene, opts: LayoutImageOptions = {}): Promise<Buffer> {
  let width = Math.round(opts.width ?? 512);
  let height = Math.round((width * scene.height) / scene.width);
  // Tall pictures: keep the preview no taller than 640 px.
  if (!opts.width && height > 640) {
    height = 640;
    width = Math.round((height * scene.width) / scene.height);
  }
  const font = Math.max(12, Math.round(Math.min(width, height) / 30));
  const stroke = Math.max(2, Math.round(font / 5));
  const parts: string[] = [];
  if (!opts.image) {
    // A light grid every eighth of the picture gives a sense of position and scale.
    for (let i = 1; i < 8; i++) {
      const x = Math.round((i * width) / 8),
        y = Math.round((i * height) / 8);
      parts.push(
        `<line x1="${x}" y1="0" x2="${x}" y2="${height}" stroke="#dddddd" stroke-width="1"/>`,
        `<line x1="0" y1="${y}" x2="${width}" y2="${y}" stroke="#dddddd" stroke-width="1"/>`,
      );
    }
  }
  if (opts.showCells) {
    for (const c of deriveSoftGrid(scene).cells) {
      const x = (c.rect.c0 * 16 * width) / scene.width,
        y = (c.rect.r0 * 16 * height) / scene.height;
      const w = ((c.rect.c1 - c.rect.c0) * 16 * width) / scene.width,
        h = ((c.rect.r1 - c.rect.r0) * 16 * height) / scene.height;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h.toFixed(1)}" fill="none" stroke="#555555" stroke-width="1.5" stroke-dasharray="6 4"/>`,
      );
    }
  }
  const labels: string[] = [];
  const pad = Math.round(font * 0.35);
  const tagH = font + 2 * pad;
  const glyph = font * 0.63;
  scene.regions.forEach((r, i) => {
    const colour = PALETTE[i % PALETTE.length]!;
    const x = r.box.x * width,
      y = r.box.y * height,
      w = r.box.w * width,
      h = r.box.h * height;
    parts.push(
      `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h.toFixed(1)}" fill="${colour}" fill-opacity="${opts.image ? 0.12 : 0.2}" stroke="${colour}" stroke-width="${stroke}"/>`,
    );
    // The tag stays inside its box (neighbouring tags never cover each other); the legend has the full label.
    const number = `${i + 1}`;
    const short = r.label.replace(/^(a|an|the)\s+/i, '');
    const text = w - 2 * pad >= (number.length + 3) * glyph ? fitText(`${number} ${short}`, w - 2 * pad, font) : number;
    const tagW = Math.min(width - x, text.length * glyph + 2 * pad);
    const ty = Math.min(y, height - tagH);
    labels.push(
      `<rect x="${x.toFixed(1)}" y="${ty.toFixed(1)}" width="${tagW.toFixed(1)}" height="${tagH}" fill="${colour}"${opts.image ? ' stroke="#000000" stroke-opacity="0.5" stroke-width="1"' : ''}/>`,
      `<text x="${(x + pad).toFixed(1)}" y="${(ty + pad + font * 0.82).toFixed(1)}" font-family="${FONT}" font-weight="bold" font-size="${font}" fill="${textColour(colour)}">${escapeXml(text)}</text>`,
    );
  });
  // Legend: every region's number and full label (and styles) in its colour, in one or two columns under the picture.
  const legend: string[] = [];
  let legendH = 0;
  if (scene.regions.length && opts.legend !== false) {
    const columns = width >= 360 && scene.regions.length > 1 ? 2 : 1;
    const colW = width / columns;
    const rowH = Math.round(font * 1.5);
    const rows = Math.ceil(scene.regions.length / columns);
    legendH = rows * rowH + pad * 2;
    legend.push(`<rect x="0" y="${height}" width="${width}" height="${legendH}" fill="#ffffff"/>`);
    scene.regions.forEach((r, i) => {
      const colour = PALETTE[i % PALETTE.length]!;
      const cx = (i % columns) * colW + pad,
        cy = height + pad + Math.floor(i / columns) * rowH;
      const sw = font * 0.9;
      legend.push(
        `<rect x="${cx.toFixed(1)}" y="${(cy + (rowH - sw) / 2).toFixed(1)}" width="${sw.toFixed(1)}" height="${sw.toFixed(1)}" fill="${colour}"/>`,
        `<text x="${(cx + sw + pad).toFixed(1)}" y="${(cy + rowH / 2 + font * 0.35).toFixed(1)}" font-family="${FONT}" font-size="${font}" fill="#111111">${escapeXml(fitText(`${i + 1} ${r.label}${styleTag(r)}`, colW - sw - 3 * pad, font * 0.92))}</text>`,
      );
    });
  }
  const total = height + legendH;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${total}">${parts.join('')}${labels.join('')}${legend.join('')}</svg>`;
  const picture = opts.image
    ? await sharp(opts.image).resize(width, height, { fit: 'fill' }).png().toBuffer()
    : await sharp({ create: { width, height, channels: 3, background: '#f7f7f7' } })
        .png()
        .toBuffer();
  return sharp({ create: { width, height: total, channels: 3, background: '#ffffff' } })
    .composite([
      { input: picture, top: 0, left: 0 },
      { input: Buffer.from(svg), top: 0, left: 0 },
    ])
    .png()
    .toBuffer();
}

/** " [watercolor 0.8]": a region's styles after its label in the legend; nothing without styles. */
function styleTag(r: Region): string {
  if (!r.loras?.length) return '';
  return ` [${r.loras.map((l) => (l.scale === 1 ? l.name : `${l.name} ${Number(l.scale.toFixed(2))}`)).join(', ')}]`;
}
