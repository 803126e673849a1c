import { closeSync, openSync, readSync } from 'node:fs';
import type { TensorSource } from '../onnx/graph.ts';

/** The raw bytes of a plain (external or in-memory) source. */
export function readSourceBytes(src: TensorSource): Uint8Array {
  if (src.data) return src.data;
  if (!src.external) throw new Error('internal error: tensor source has no data');
  const { file, offset, length } = src.external;
  const buf = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) throw new Error(`${file}: unexpected end of file at byte ${offset + got}`);
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}
