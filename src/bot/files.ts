import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import sharp from 'sharp';

/**
 * A stored image, or undefined when it is missing, empty or does not decode (a damaged file counts as a
 * missing one: the caller paints afresh or draws a grey tile instead of failing).
 */
export async function readImage(file: string | undefined): Promise<Buffer | undefined> {
  if (!file) return undefined;
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch {
    return undefined;
  }
  if (data.length === 0) return undefined;
  try {
    // Decodes every pixel: a truncated PNG has a valid header and still fails here.
    await sharp(data).stats();
    return data;
  } catch {
    return undefined;
  }
}

/**
 * Whether a safetensors file (a stored trajectory) is whole: its header parses and every tensor's bytes are
 * in the file. The bot does not read the tensors; it only avoids offering a repaint that cannot run.
 */
export function safetensorsWhole(file: string | undefined): boolean {
  if (!file) return false;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(8);
    if (size < 8 || readSync(fd, head, 0, 8, 0) !== 8) return false;
    const n = Number(head.readBigUInt64LE(0));
    if (n <= 0 || n > 100_000_000 || 8 + n > size) return false;
    const json = Buffer.alloc(n);
    if (readSync(fd, json, 0, n, 8) !== n) return false;
    const header = JSON.parse(json.toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
    let end = 0;
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const offsets = t?.data_offsets;
      if (!Array.isArray(offsets) || offsets.length !== 2) return false;
      end = Math.max(end, Number(offsets[1]));
    }
    return 8 + n + end <= size;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
