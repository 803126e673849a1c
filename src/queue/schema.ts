import { z } from 'zod';
import { GenerationParamsSchema } from '../store/schema.ts';

/**
 * What the engine is asked to paint. A generation carries its full parameters; a repaint also carries
 * its parent's parameters and artifacts (RAG repaint reruns the parent with the same seed, then repaints
 * the changed regions), so the worker needs nothing from the bot's database.
 */
export const PaintRequestSchema = z.object({
  kind: z.enum(['generate', 'repaint']),
  generationId: z.string().min(1),
  params: GenerationParamsSchema,
  parent: z
    .object({
      generationId: z.string().min(1),
      params: GenerationParamsSchema,
      /** Artifact name → absolute path (image.png and whatever the engine stored for later repaints). */
      artifacts: z.record(z.string(), z.string()),
    })
    .optional(),
});
export type PaintRequest = z.infer<typeof PaintRequestSchema>;

/**
 * Where the bot reports on a job. Channel and message ids are kept with every job because the
 * interaction token dies after 15 minutes (and with it every webhook edit): after that, or after a
 * restart, the bot falls back to channel messages.
 */
export const DiscordTargetSchema = z.object({
  userId: z.string().min(1),
  guildId: z.string().nullable(),
  channelId: z.string().min(1),
  /** The message that shows progress and then the result. */
  messageId: z.string().optional(),
  /** The message is an interaction response: once the token has died it cannot be relied on for edits. */
  viaInteraction: z.boolean().optional(),
  /** The interaction the job came from: its response can be edited through the token until expiry. */
  interactionToken: z.string().optional(),
  tokenExpiresAt: z.number().optional(),
  /** The user's message a reply-driven job answers (the result replies to it). */
  replyToMessageId: z.string().optional(),
  /** The upload limit Discord gave with the interaction (bytes); larger images go out as WebP. */
  attachmentSizeLimit: z.number().int().positive().optional(),
});
export type DiscordTarget = z.infer<typeof DiscordTargetSchema>;

export const JOB_STATUSES = ['queued', 'running', 'done', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL: ReadonlySet<JobStatus> = new Set(['done', 'failed', 'cancelled']);

export const NewJobSchema = z.object({
  userId: z.string().min(1),
  request: PaintRequestSchema,
  target: DiscordTargetSchema,
  /** A job interrupted by a dead worker is re-queued until it has been started this many times. */
  maxAttempts: z.number().int().min(1).max(5).default(2),
});
export type NewJob = z.input<typeof NewJobSchema>;

export const JobResultSchema = z.object({
  /** Absolute path of the finished PNG. */
  imagePath: z.string(),
  /** Every file the painter produced, by name (image.png included). */
  artifacts: z.record(z.string(), z.string()),
  model: z.object({ id: z.string(), version: z.string() }),
  paintMs: z.number(),
});
export type JobResult = z.infer<typeof JobResultSchema>;

export interface JobProgress {
  step: number;
  total: number;
  /** A small preview image on disk, rewritten in place as steps go by. */
  previewPath?: string;
}

export interface Job {
  id: string;
  generationId: string;
  userId: string;
  status: JobStatus;
  request: PaintRequest;
  target: DiscordTarget;
  attempts: number;
  maxAttempts: number;
  workerId: string | null;
  leaseExpiresAt: number | null;
  cancelRequested: boolean;
  progress: JobProgress | null;
  result: JobResult | null;
  /** Why it failed or was cancelled, in words for the user. */
  error: string | null;
  /** Something the user should know about the job's history ("re-queued after the worker stopped"). */
  note: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  deliveredAt: number | null;
  /** Increases with every change to any job: the change feed's cursor. */
  seq: number;
}

/**
 * A file name that travels with a job (a parent's artifact, a finished result's files) and becomes a file on the
 * machine that receives it. Through Redis these names are written by whoever can write to Redis, so they must be
 * plain names in a short alphabet: no separators, no "..", nothing that could name a path.
 */
export const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

export function isArtifactName(name: string): boolean {
  return ARTIFACT_NAME.test(name) && !name.includes('..');
}

export const ArtifactNameSchema = z.string().refine(isArtifactName, {
  message: 'not a plain file name (letters, digits, ".", "_" and "-", no "..", at most 80 characters)',
});
