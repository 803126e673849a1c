// Small pure parts of the bot: the /layout text syntax, access rules, attachment fitting, custom ids.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { parseLayoutText } from '../../src/bot/layout-syntax.ts';
import { fitAttachment } from '../../src/bot/images.ts';
import { parseCustomId, resultButtons } from '../../src/bot/components.ts';
import { quote } from '../../src/bot/text.ts';

describe('/layout text syntax', () => {
  it('reads labels, descriptions, percent boxes and named areas', () => {
    const regions = parseLayoutText(
      'a black cat: a sleepy black cat @ 5 40 40 50%; a white dog @ right\n  a moon @ top-right',
      8,
    );
    expect(regions).toEqual([
      { id: 'r1', label: 'a black cat', prompt: 'a sleepy black cat', box: { x: 0.05, y: 0.4, w: 0.4, h: 0.5 } },
      { id: 'r2', label: 'a white dog', prompt: 'a white dog', box: { x: 0.53, y: 0.1, w: 0.44, h: 0.8 } },
      { id: 'r3', label: 'a moon', prompt: 'a moon', box: { x: 0.53, y: 0.03, w: 0.44, h: 0.44 } },
    ]);
  });

  it('says which region is wrong and how to fix it', () => {
    expect(() => parseLayoutText('a cat @ 10 10 10', 8)).toThrow(/Region 1: "10 10 10" is not a place/);
    expect(() => parseLayoutText('a cat @ left; a dog', 8)).toThrow(/Region 2 .* has no `@`/);
    expect(() => parseLayoutText('a cat @ 60 0 50 50', 8)).toThrow(/past the edge/);
    expect(() => parseLayoutText('@ left', 8)).toThrow(/no label/);
    expect(() => parseLayoutText('a @ left; b @ right; c @ top', 2)).toThrow(/at most 2/);
    expect(() => parseLayoutText(' ; ', 2)).toThrow(/at least one region/);
  });
});

describe('attachments', () => {
  it('keeps a PNG under the limit and turns a larger one into WebP under the limit', async () => {
    const noisy = await sharp(Buffer.from(Array.from({ length: 256 * 256 * 3 }, (_, i) => (i * 2654435761) % 251)), {
      raw: { width: 256, height: 256, channels: 3 },
    })
      .png()
      .toBuffer();
    const small = await fitAttachment(noisy, noisy.length + 1, 'x');
    expect(small.name).toBe('x.png');
    const limit = Math.floor(noisy.length / 4);
    const fitted = await fitAttachment(noisy, limit, 'x');
    expect(fitted.name).toBe('x.webp');
    expect(fitted.data.length).toBeLessThanOrEqual(limit);
    expect((await sharp(fitted.data).metadata()).format).toBe('webp');
  });
});

describe('buttons', () => {
  it('carry verb:<generation id> within Discord limits and parse back', () => {
    const ids = resultButtons('g0123456789abcdefghjk', { canPaint: true })[0]!.components.map(
      (c) => (c as { custom_id: string }).custom_id,
    );
    expect(ids).toEqual([
      'reroll:g0123456789abcdefghjk',
      'layout:g0123456789abcdefghjk',
      'edit:g0123456789abcdefghjk',
      'history:g0123456789abcdefghjk',
      'delete:g0123456789abcdefghjk',
    ]);
    for (const id of ids) expect(id.length).toBeLessThanOrEqual(100);
    expect(parseCustomId('edit:g0123456789abcdefghjk')).toEqual({
      verb: 'edit',
      generationId: 'g0123456789abcdefghjk',
    });
    expect(parseCustomId('edit:../../etc')).toBeUndefined();
    expect(parseCustomId('launch:g1')).toBeUndefined();
    expect(resultButtons('g1', { canPaint: false })[0]!.components).toHaveLength(4);
  });

  it('quotes user text without letting it restyle the message', () => {
    expect(quote('**bold** `code` [link](x)')).toBe('“\\*\\*bold\\*\\* \\`code\\` \\[link\\]\\(x\\)”');
    expect(quote('a'.repeat(300), 10)).toBe(`“${'a'.repeat(9)}…”`);
  });
});
