import { z } from 'zod';
import { PaintRequestSchema } from '../queue/schema.ts';

// Messages between the worker host (in the bot or `worker` process) and the painting child process.
// The channel uses Node's "advanced" IPC serialization, so images travel as Uint8Array, not JSON arrays.

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes (Uint8Array)');

export const HostMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('init'),
    painterModule: z.string(),
    options: z.object({
      modelDir: z.string(),
      executionProvider: z.enum(['cpu', 'cuda', 'webgpu']),
      threads: z.number().int(),
      extra: z.record(z.string(), z.unknown()).optional(),
    }),
  }),
  z.object({ type: z.literal('run'), jobId: z.string(), request: PaintRequestSchema }),
  z.object({ type: z.literal('cancel'), jobId: z.string() }),
  z.object({ type: z.literal('shutdown') }),
]);
export type HostMessage = z.infer<typeof HostMessageSchema>;

export const ChildMessageSchema = z.discriminatedUnion('type', [
  // The model is known (its configs are read) and its weights are loading: minutes for the real FLUX.
  z.object({ type: z.literal('loading'), info: z.object({ id: z.string(), version: z.string() }) }),
  z.object({ type: z.literal('ready'), info: z.object({ id: z.string(), version: z.string() }) }),
  z.object({ type: z.literal('init-error'), message: z.string() }),
  z.object({
    type: z.literal('progress'),
    jobId: z.string(),
    step: z.number().int(),
    total: z.number().int(),
    preview: bytes.optional(),
  }),
  z.object({
    type: z.literal('result'),
    jobId: z.string(),
    png: bytes,
    artifacts: z.record(z.string(), bytes),
    paintMs: z.number(),
  }),
  z.object({ type: z.literal('error'), jobId: z.string(), message: z.string(), cancelled: z.boolean() }),
]);
export type ChildMessage = z.infer<typeof ChildMessageSchema>;
