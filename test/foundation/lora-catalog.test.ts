// The LORA_DIR catalog: styles named by their files' stems, trigger words and base model from the safetensors
// header, SHA-256 of the whole file remembered by path, size and modification time.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { browseStyles, findStyle, listStyles, styleNames } from '../../src/engine/lora/catalog.ts';
import { writeSafetensors } from '../../src/engine/weights/safetensors.ts';
import { writeStyleFile } from '../bot/style-files.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'sw-catalog-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('LORA_DIR catalog', () => {
  const dir = path.join(tmp, 'styles');
  const water = writeStyleFile(dir, 'watercolor', { tags: { 'wc style': 9, splash: 2 }, baseModel: 'flux1' });
  writeStyleFile(dir, 'Ink-Wash', { seed: 2 });
  writeFileSync(path.join(dir, 'notes.txt'), 'not a style');
  writeFileSync(path.join(dir, 'broken.safetensors'), Buffer.from([1, 2, 3]));
  const sdxl = path.join(tmp, 'sdxl');
  mkdirSync(sdxl);
  writeSafetensors(
    path.join(sdxl, 'anime-xl.safetensors'),
    {
      'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight': {
        dtype: 'float32',
        shape: [4, 2048],
        data: new Float32Array(4 * 2048),
      },
    },
    { ss_base_model_version: 'sdxl_base_v1-0' },
  );

  it('lists the .safetensors files by stem with metadata and hashes; a broken file is left out and named', async () => {
    const skipped: string[] = [];
    const styles = await listStyles(dir, skipped);
    expect(styles.map((s) => s.name)).toEqual(['Ink-Wash', 'watercolor']);
    const w = styles[1]!;
    expect(w).toMatchObject({
      path: water,
      sha256: sha(water),
      meta: { triggerWords: ['wc style', 'splash'], baseModel: 'flux1' },
    });
    expect(w.sizeBytes).toBe(readFileSync(water).length);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatch(/^broken\.safetensors: style "broken" is not a usable LoRA file: .*truncated/);
    expect(await styleNames(dir)).toEqual(['broken', 'Ink-Wash', 'watercolor']);
  });

  it('a LoRA for another model is not a style: listing leaves it out, naming what it is; asking for it says so', async () => {
    const skipped: string[] = [];
    expect(await listStyles(sdxl, skipped)).toEqual([]);
    expect(skipped[0]).toMatch(/anime-xl\.safetensors is a LoRA for Stable Diffusion XL, not FLUX/);
    await expect(findStyle(sdxl, 'anime-xl')).rejects.toThrow(
      /style "anime-xl" is not a usable LoRA file: anime-xl\.safetensors is a LoRA for Stable Diffusion XL, not FLUX/,
    );
  });

  it('a second listing reuses what it knows (by path, size and time); a file that changed is read and hashed again', async () => {
    // Whole seconds: a file time that survives being set again exactly.
    const when = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
    utimesSync(water, when, when);
    const first = await listStyles(dir);
    expect((await browseStyles(dir))[1]).toBe((await browseStyles(dir))[1]);
    expect((await browseStyles(dir))[1]).not.toHaveProperty('sha256');
    // Other bytes under the same size and time are not looked at again: the hash is the remembered one.
    const flipped = readFileSync(water);
    flipped.writeUInt8(flipped.readUInt8(flipped.length - 1) ^ 0xff, flipped.length - 1);
    writeFileSync(water, flipped);
    utimesSync(water, when, when);
    expect((await listStyles(dir))[1]!.sha256).toBe(first[1]!.sha256);
    const other = writeStyleFile(path.join(tmp, 'other'), 'x', { seed: 77 });
    writeFileSync(water, readFileSync(other));
    utimesSync(water, new Date(), new Date(Date.now() + 5000));
    const after = await listStyles(dir);
    expect(after[1]!.sha256).toBe(sha(other));
    expect(after[1]!.meta.triggerWords).toEqual([]);
  });

  it('finds a style by its exact name or, when only one matches, ignoring case; an unknown name lists the names', async () => {
    expect((await findStyle(dir, 'Ink-Wash')).name).toBe('Ink-Wash');
    expect((await findStyle(dir, 'ink-wash')).name).toBe('Ink-Wash');
    await expect(findStyle(dir, 'oil')).rejects.toThrow(
      'there is no style "oil"; the styles are: broken, Ink-Wash, watercolor',
    );
    const empty = path.join(tmp, 'empty');
    mkdirSync(empty);
    await expect(findStyle(empty, 'oil')).rejects.toThrow(/the style folder \(LORA_DIR\) has no \.safetensors files/);
    await expect(findStyle(path.join(tmp, 'nowhere'), 'oil')).rejects.toThrow(
      /LORA_DIR \(.*nowhere\) cannot be read \(ENOENT\)/,
    );
  });

  // That a cached listing reads no file is the cache test above; this one lists a realistic folder and logs the times.
  it('50 styles: listed with their hashes, the same again from the cache', async () => {
    const many = path.join(tmp, 'many');
    for (let i = 0; i < 50; i++) writeStyleFile(many, `style-${i}`, { seed: i, rank: 256 });
    let t = performance.now();
    const first = await listStyles(many);
    const cold = performance.now() - t;
    t = performance.now();
    const warm = await listStyles(many);
    const hot = performance.now() - t;
    expect(first).toHaveLength(50);
    expect(warm).toEqual(first);
    console.log(
      `listStyles, 50 styles of ${(first[0]!.sizeBytes / 2 ** 20).toFixed(2)} MiB: ${cold.toFixed(0)} ms cold, ${hot.toFixed(1)} ms cached`,
    );
  });
});
