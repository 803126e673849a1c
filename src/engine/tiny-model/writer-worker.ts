/** A worker thread of the parallel checkpoint writer (make.ts writeTinyModel): draws and writes pieces. */
import { parentPort } from 'node:worker_threads';
import { servePieces } from './random-tensors.ts';

if (!parentPort) throw new Error('writer-worker.ts runs as a worker thread of make.ts');
servePieces(parentPort);
