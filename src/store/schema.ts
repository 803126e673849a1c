import { z } from 'zod';
import { RagParamsSchema } from '../rag/params.ts';
import { BoxSchema, SceneSchema } from '../scene/schema.ts';

/** One region a repaint touches: its box before and/or after the edit (absent for added/removed). */
export const RepaintRegionSchema = z.object({
  id: z.string(),
  oldBox: BoxSchema.optional(),
  newBox: BoxSchema.optional(),
});
export type RepaintRegion = z.infer<typeof RepaintRegionSchema>;

/**
 * Everything needed to paint a generation again, bit for bit: the Scene, seed, steps, size (inside the
 * Scene), the model asked for, and for a repaint the changed regions. `rag` holds the RAG parameters
 * derived from the Scene when they were computed, so a stored row shows exactly what the engine was given.
 */
export const GenerationParamsSchema = z.object({
  scene: SceneSchema,
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1),
  steps: z.number().int().min(1).max(1000),
  model: z.string().min(1).max(64),
  rag: z.unknown().optional(),
  /**
   * Every RAG pass the generation runs, in order, as src/paint/passes.ts decided them when the request was
   * accepted (masks inside as data: URLs): one for a generation, one per changed region for a chained repaint.
   * `rag` is the last of them, with its mask as the path of the stored mask.png. Absent in rows written before.
   */
  passes: z.array(RagParamsSchema).min(1).max(64).optional(),
  repaint: z
    .object({
      instruction: z.string().max(2000),
      regions: z.array(RepaintRegionSchema),
      /**
       * `chained`: several regions changed, repainted one after another, each with its own mask and prompt
       * (src/paint/passes.ts; `passes` holds them all, `rag` the last). Absent: one repaint of all.
       */
      mode: z.enum(['single', 'chained']).optional(),
    })
    .optional(),
});
export type GenerationParams = z.infer<typeof GenerationParamsSchema>;

export const GENERATION_KINDS = ['generate', 'repaint', 'layout'] as const;
export type GenerationKind = (typeof GENERATION_KINDS)[number];

/**
 * `layout`: planned and shown, not painted (no model configured, or a /layout preview).
 * The rest follow the job: queued → running → done | failed | cancelled.
 */
export const GENERATION_STATUSES = ['layout', 'queued', 'running', 'done', 'failed', 'cancelled'] as const;
export type GenerationStatus = (typeof GENERATION_STATUSES)[number];

export interface Generation {
  id: string;
  parentId: string | null;
  kind: GenerationKind;
  status: GenerationStatus;
  userId: string;
  guildId: string | null;
  channelId: string;
  /** What the user typed: the /imagine prompt, or the reply instruction that led to this generation. */
  requestText: string;
  params: GenerationParams;
  /** How the Scene was made: `llm:<model>`, `offline`, `explicit` (/layout) or `edit`. */
  planner: string | null;
  modelId: string | null;
  modelVersion: string | null;
  jobId: string | null;
  /** Artifact name → absolute file path (image.png, layout.png, whatever a later repaint needs). */
  artifacts: Record<string, string>;
  error: string | null;
  /** Durations in milliseconds: plan, queue (wait), paint, total. */
  timings: Record<string, number>;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

/** `history`: a history message (replies to it edit the version it was opened from). */
export const MESSAGE_ROLES = ['result', 'layout', 'status', 'question', 'history'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export interface MessageLink {
  messageId: string;
  channelId: string;
  generationId: string;
  role: MessageRole;
  createdAt: number;
  /** For a clarifying question: the instructions and questions that led to it, oldest first. */
  history: string[];
}

/** Per-user defaults that /settings changes; every field optional (unset = the server default). */
export const UserSettingsSchema = z.object({
  steps: z.number().int().min(1).max(1000).optional(),
  aspect: z
    .string()
    .regex(/^\d{1,2}:\d{1,2}$/)
    .optional(),
  model: z.string().min(1).max(64).optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .optional(),
});
export type UserSettings = z.infer<typeof UserSettingsSchema>;
