import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { PALETTE, renderLayout } from '../../src/planner/layout-image.ts';
import type { Scene } from '../../src/scene/schema.ts';

const scene: Scene = {
  width: 1024,
  height: 1024,
  prompt: 'p',
  background: 'b',
  exclude: [],
  regions: [
    { id: 'r1', label: 'a tabby cat', prompt: 'x', box: { x: 0.0625, y: 0.25, w: 0.375, h: 0.5 } },
    {
      id: 'r2',
      label: 'a <b>"black" & \'odd\'</b> cat\u0007',
      prompt: 'x',
      box: { x: 0.5625, y: 0.25, w: 0.375, h: 0.5 },
    },
  ],
};

async function pixels(png: Buffer) {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
  return { info, at };
}

const hex = (c: string) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));

describe('layout pictures', () => {
  it('boxes in distinct colours at their places, a legend below, text actually rendered', async () => {
    const png = await renderLayout(scene);
    const { info, at } = await pixels(png);
    expect(info.width).toBe(512);
    expect(info.height).toBeGreaterThan(512);
    // Left edge of box 1 (x = 32 px at 512 wide), halfway down: the first palette colour.
    expect(at(32, 256)).toEqual(hex(PALETTE[0]!));
    expect(at(288, 256)).toEqual(hex(PALETTE[1]!));
    // Outside every box: the blank canvas.
    expect(at(250, 30)).toEqual([247, 247, 247]);
    // The legend holds dark text: glyphs were drawn (fails when no system font can render text).
    let dark = 0;
    for (let y = 512; y < info.height; y++) for (let x = 40; x < 250; x++) if (at(x, y).every((v) => v < 90)) dark++;
    expect(dark).toBeGreaterThan(40);
    // The tag inside box 1 carries white text on red.
    let white = 0;
    for (let y = 128; y < 128 + 20; y++) for (let x = 36; x < 200; x++) if (at(x, y).every((v) => v > 235)) white++;
    expect(white).toBeGreaterThan(10);
  });

  it('labels are real glyphs, not missing-font boxes (needs a system font, e.g. Debian fonts-dejavu-core)', async () => {
    const ink = async (label: string) => {
      const png = await renderLayout({ ...scene, regions: [{ ...scene.regions[0]!, label }] });
      const { info, at } = await pixels(png);
      let n = 0;
      for (let y = 512; y < info.height; y++)
        for (let x = 30; x < info.width; x++) if (at(x, y).every((v) => v < 90)) n++;
      return n;
    };
    // Without a usable font every character becomes the same box, so both strings would get the same ink.
    const thin = await ink('iiiiiiiiiiii'),
      wide = await ink('WWWWWWWWWWWW');
    expect(wide).toBeGreaterThan(thin * 1.8);
  });

  it('over an image: the picture shows through outside the boxes; size follows the scene', async () => {
    const image = await sharp({ create: { width: 1344, height: 768, channels: 3, background: '#336699' } })
      .png()
      .toBuffer();
    const wide: Scene = { ...scene, width: 1344, height: 768 };
    const png = await renderLayout(wide, { image, legend: false });
    const { info, at } = await pixels(png);
    expect([info.width, info.height]).toEqual([512, 293]);
    expect(at(256, 10)).toEqual(hex('#336699'));
  });

  it('many regions, tiny boxes, soft-refinement cells and no regions all render', async () => {
    const many: Scene = {
      ...scene,
      regions: Array.from({ length: 16 }, (_, i) => ({
        id: `r${i + 1}`,
        label: `thing number ${i + 1} with a long label`,
        prompt: 'x',
        box: { x: (i % 4) / 4, y: Math.floor(i / 4) / 4, w: 1 / 64, h: 1 / 64 },
      })),
    };
    expect((await pixels(await renderLayout(many, { showCells: true, width: 400 }))).info.width).toBe(400);
    const none = await renderLayout({ ...scene, regions: [] });
    expect((await pixels(none)).info.height).toBe(512);
  });
});
