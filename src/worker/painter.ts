import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PaintRequest } from '../queue/schema.ts';

export type { PaintRequest } from '../queue/schema.ts';

/** Which model a painter runs, recorded with every generation it paints. */
export interface PainterInfo {
  /** e.g. "flux.1-schnell" */
  id: string;
  /** Whatever pins the weights and the engine: a checkpoint hash, a version string. */
  version: string;
}

export interface PaintContext {
  /** Called after each denoising step; `previewPng` is an optional small preview (a few hundred px). */
  onProgress(step: number, total: number, previewPng?: Uint8Array): void;
  /** Aborted when the user deletes the job: stop at the next step and throw (any error). */
  signal: AbortSignal;
}

export interface PaintOutput {
  /** The finished image as PNG. */
  png: Uint8Array;
  /**
   * Files a later repaint of this image needs (latents, masks...), by plain file name. The host stores
   * them next to the image and hands their paths back in `PaintRequest.parent.artifacts`.
   */
  artifacts: Record<string, Uint8Array>;
}

/**
 * The engine as the worker sees it. One painter paints one job at a time, in a worker child process,
 * never on the bot's event loop. `paint` handles both kinds of request: `generate` (Scene → image) and
 * `repaint` (parent parameters + artifacts + changed regions → image where only those regions change).
 */
export interface Painter {
  readonly info: PainterInfo;
  paint(request: PaintRequest, context: PaintContext): Promise<PaintOutput>;
  close?(): Promise<void>;
}

export interface PainterOptions {
  modelDir: string;
  executionProvider: 'cpu' | 'cuda' | 'webgpu';
  threads: number;
  /** Free-form options for a particular painter module (the engine's: previewEvery, memoryCheck). */
  extra?: Record<string, unknown>;
}

/** What the worker learns while a painter loads. */
export interface PainterHooks {
  /** The model is known and its weights are about to load (awaited before loading starts). */
  onLoading?(info: PainterInfo): void | Promise<void>;
}

/** What a painter module exports. The engine's lives at src/worker/engine-painter.ts. */
export interface PainterModule {
  createPainter(options: PainterOptions, hooks?: PainterHooks): Promise<Painter>;
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** The engine's painter module; it exists once the engine's pipeline entry has landed. */
export const ENGINE_PAINTER_MODULE = path.resolve(here, './engine-painter.ts');

export function enginePainterAvailable(): boolean {
  return existsSync(ENGINE_PAINTER_MODULE);
}
