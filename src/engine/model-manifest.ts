/**
 * Model manifests (models/*.json): which FLUX.1 variant a checkpoint is, its scheduler and its RAG defaults.
 * The engine reads them to schedule; the paint request reads them for the defaults a Scene is painted with.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const MODEL_IDS = ['flux.1-dev', 'flux.1-schnell'] as const;
export type ModelId = (typeof MODEL_IDS)[number];

const ModelManifestSchema = z.object({
  id: z.enum(MODEL_IDS),
  name: z.string(),
  huggingFaceRepo: z.string(),
  layouts: z.array(z.string()),
  guidanceEmbeds: z.boolean(),
  maxSequenceLength: z.number().int().positive(),
  scheduler: z.object({
    shift: z.number(),
    useDynamicShifting: z.boolean(),
    baseShift: z.number(),
    maxShift: z.number(),
    baseImageSeqLen: z.number().int(),
    maxImageSeqLen: z.number().int(),
  }),
  defaults: z.object({
    num_inference_steps: z.number().int().positive(),
    guidance_scale: z.number().min(0),
    HB_replace: z.number().int().min(-1),
    SR_delta: z.number().min(0).max(1),
    Repainting_HB_replace: z.number().int().min(0),
    Repainting_single: z.union([z.literal(0), z.literal(1)]),
  }),
  source: z.string(),
});
export type ModelManifest = z.infer<typeof ModelManifestSchema>;

const manifests = new Map<string, ModelManifest>();

/** Reads models/<id>.json (cached). */
export function loadModelManifest(id: string): ModelManifest {
  const hit = manifests.get(id);
  if (hit) return hit;
  if (!(MODEL_IDS as readonly string[]).includes(id))
    throw new Error(`unknown model "${id}": use one of ${MODEL_IDS.join(', ')}`);
  const url = new URL(`../../models/${id}.json`, import.meta.url);
  const parsed = ModelManifestSchema.safeParse(JSON.parse(readFileSync(url, 'utf8')));
  if (!parsed.success)
    throw new Error(
      `models/${id}.json is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  manifests.set(id, parsed.data);
  return parsed.data;
}

/** Which manifest fits a checkpoint, from its transformer/config.json: only dev embeds guidance. */
export function modelIdForTransformerConfig(config: { guidance_embeds?: boolean }): ModelId {
  return config.guidance_embeds ? 'flux.1-dev' : 'flux.1-schnell';
}
