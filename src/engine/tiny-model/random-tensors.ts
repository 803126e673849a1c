/**
 * The random weights of a `make-tiny-model` checkpoint, cut into pieces that can be drawn anywhere.
 *
 * Each component's tensors are drawn from one GaussianNoise stream in sorted name order (make.ts). Because that
 * stream is counter-based (noise.ts clause 4), a tensor of n values starts at block Σ ceil(n_prev / 2), and an
 * even-sized slice of it at element e starts at block start + e / 2; so the pieces below, drawn in any order and
 * any thread, give the same bits as drawing every tensor in turn. Pieces are at most PIECE_VALUES long, so a
 * writer holds a few tens of MB whatever the tensor (FLUX.1-width proj_out is 47 M values).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { GaussianNoise } from '../noise.ts';
import { float32ToBf16Array } from '../weights/dtype.ts';

/** Values per piece: 4 Mi (16 MiB of float32 while drawn, 8 MiB of bf16 written). Even, as pieces must be. */
export const PIECE_VALUES = 4 * 2 ** 20;

type InitKind = 'bias' | 'scale' | 'embedding' | 'weight';

/** One piece: where its values come from in the stream, how they are scaled, and where they go in the file. */
export interface Piece {
  seed: number;
  /** First Philox block of the piece. */
  block: number;
  count: number;
  /** value = N · mul + add, then rounded to bf16. */
  mul: number;
  add: number;
  /** Byte offset in the output file. */
  position: number;
}

function initKind(name: string, shape: number[]): InitKind {
  if (name.endsWith('.bias')) return 'bias';
  if (name === 'shared.weight' || name.endsWith('embedding.weight') || name.includes('relative_attention_bias'))
    return 'embedding';
  if (shape.length === 1) return 'scale';
  return 'weight';
}

/** Scaled like the fixtures: biases 0.05·N, 1-D scales 1 + 0.1·N, embeddings 0.5·N, other weights N / √fan_in. */
function scaling(name: string, shape: number[]): { mul: number; add: number } {
  const kind = initKind(name, shape);
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  if (kind === 'bias') return { mul: 0.05, add: 0 };
  if (kind === 'scale') return { mul: 0.1, add: 1 };
  if (kind === 'embedding') return { mul: 0.5, add: 0 };
  return { mul: 1 / Math.sqrt(fanIn), add: 0 };
}

/** The pieces of tensors laid out back to back from `dataStart`, in the given (sorted) order, all bf16. */
export function planPieces(
  tensors: { name: string; shape: number[] }[],
  seed: number,
  dataStart: number,
  pieceValues = PIECE_VALUES,
): Piece[] {
  if (pieceValues % 2 !== 0) throw new Error('internal error: pieces must hold an even number of values');
  const pieces: Piece[] = [];
  let block = 0;
  let position = dataStart;
  for (const { name, shape } of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    const { mul, add } = scaling(name, shape);
    for (let e = 0; e < n; e += pieceValues) {
      const count = Math.min(pieceValues, n - e);
      pieces.push({ seed, block: block + e / 2, count, mul, add, position: position + 2 * e });
    }
    block += Math.ceil(n / 2);
    position += 2 * n;
  }
  return pieces;
}

/** The bf16 bits of one piece. */
export function drawPiece(p: Piece): Uint16Array {
  const values = new GaussianNoise(p.seed).seek(p.block).next([p.count]);
  for (let i = 0; i < values.length; i++) values[i] = values[i]! * p.mul + p.add;
  return float32ToBf16Array(values);
}

/** Draws pieces and writes each at its position in an open file. */
export function writePieces(fd: number, pieces: Iterable<Piece>): void {
  for (const p of pieces) {
    const bits = drawPiece(p);
    writeSync(fd, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), 0, bits.byteLength, p.position);
  }
}

/** A piece addressed to a file, as the parallel writer sends it to a worker. */
export interface PieceJob {
  file: string;
  piece: Piece;
}

/** Worker entry (writer-worker.ts): writes the pieces it is sent into their files and answers each with its count. */
export function servePieces(port: {
  on(ev: 'message', f: (m: PieceJob | null) => void): void;
  postMessage(m: number): void;
}): void {
  const fds = new Map<string, number>();
  port.on('message', (job) => {
    if (job === null) {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
      port.postMessage(-1);
      return;
    }
    let fd = fds.get(job.file);
    if (fd === undefined) {
      fd = openSync(job.file, 'r+');
      fds.set(job.file, fd);
    }
    writePieces(fd, [job.piece]);
    port.postMessage(job.piece.count);
  });
}
