import { z } from 'zod';
import { BlobFilesSchema } from './blobs.ts';
import type { Job as BullJob } from 'bullmq';
import { PaintRequestSchema, type Job, type PaintRequest } from './schema.ts';

/**
 * What travels through BullMQ between the bot and the workers, and the words both sides use for what
 * happened to a job. Read from Redis, so every shape here is checked on the way in.
 */

/** What a BullMQ job carries: everything a worker on another machine needs, nothing about Discord. */
export const JobDataSchema = z.object({
  v: z.literal(1),
  userId: z.string().min(1),
  // Its files are Redis references the bot wrote (see pack): a worker writes them to its disk under their names.
  request: PaintRequestSchema.superRefine((r, ctx) => {
    if (r.parent) {
      const files = BlobFilesSchema.safeParse(r.parent.artifacts);
      for (const issue of files.error?.issues ?? [])
        ctx.addIssue({ code: 'custom', path: ['parent', 'artifacts', ...issue.path], message: issue.message });
    }
    // A mask is the bot's stored file sent as a reference, or inline (a data: URL, no file at all).
    const mask = (r.params.rag as Record<string, unknown> | undefined)?.Repainting_mask;
    if (
      typeof mask === 'string' &&
      !mask.startsWith('data:') &&
      !BlobFilesSchema.safeParse({ 'mask.png': mask }).success
    )
      ctx.addIssue({
        code: 'custom',
        path: ['params', 'rag', 'Repainting_mask'],
        message: "not the queue's reference for a mask",
      });
  }),
  maxAttempts: z.number().int().min(1).max(5),
  /** Set by a worker that gave the job back (its painter process died): shown to the user. */
  note: z.string().optional(),
});
export type JobData = z.infer<typeof JobDataSchema>;

/** What a worker hands back: the files as Redis references, fetched and deleted by the bot. */
export const ReturnSchema = z.object({
  files: BlobFilesSchema,
  model: z.object({ id: z.string(), version: z.string() }),
  paintMs: z.number(),
});

/** Whether a worker's return value names an image at all (else it is not a result of this program). */
export function hasImage(returnvalue: unknown): boolean {
  const files = (returnvalue as { files?: unknown } | null)?.files;
  return typeof files === 'object' && files !== null && 'image.png' in files;
}

/** The failure reason of a job that was cancelled (the bot shows its own reason instead). */
export const CANCELLED = 'cancelled';
export const STOPPED = 'the worker painting it stopped (crashed, was killed or lost its connection)';
export const ORIGINAL_GONE =
  'the original image is no longer available to the workers (its files expired in Redis before a worker took this repaint), so it cannot be repainted; **Try again** paints the changed layout as a new picture';

/** BullMQ queue names may not contain ':'; model ids are short slugs such as flux.1-schnell. */
export function queueName(model: string): string {
  return `paint-${model.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** A claimed job as the worker host sees it (a worker machine has no bot row: this is all it knows). */
export function runningView(
  bull: BullJob,
  data: JobData,
  request: PaintRequest,
  workerId: string,
  leaseMs: number,
): Job {
  return {
    id: bull.id!,
    generationId: request.generationId,
    userId: data.userId,
    status: 'running',
    request,
    target: { userId: data.userId, guildId: null, channelId: 'remote' },
    attempts: bull.attemptsStarted,
    maxAttempts: data.maxAttempts,
    workerId,
    leaseExpiresAt: Date.now() + leaseMs,
    cancelRequested: false,
    progress: null,
    result: null,
    error: null,
    note: data.note ?? null,
    createdAt: bull.timestamp,
    startedAt: Date.now(),
    finishedAt: null,
    deliveredAt: null,
    seq: 0,
  };
}
