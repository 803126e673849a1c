import { z } from 'zod';

/** Bumped whenever the stored shape of a Scene changes; stored rows carry it. */
export const SCENE_SCHEMA_VERSION = 1;

/** FLUX packs 2×2 latent pixels of an 8× VAE into one token: one token is 16×16 image pixels. */
export const TOKEN_PX = 16;

export const LIMITS = {
  labelMax: 120,
  promptMax: 600,
  idMax: 32,
  excludeMax: 16,
} as const;

/** A box in fractions of the image, top-left origin: x, y from the left and top edges; w, h its size. */
/**
 * How many styles one picture may use and their scale range: the same numbers as rag/params.ts's LORA_LIMITS (the
 * step graph's LoRA inputs are sized by them), which this floor may not import; a test keeps the two equal.
 */
export const STYLE_LIMITS = { maxStyles: 8, minScale: -4, maxScale: 4 } as const;

/**
 * A style (LoRA) by name (a style in LORA_DIR, or a `.safetensors` path for CLI use) and scale; the same shape as a
 * paint pass's LoraRef. Scene-level styles apply to the whole picture, a region's only inside its box. The file's
 * hash is pinned in the paint passes when a request is made; a Scene may carry one (a saved generation's).
 */
export const StyleRefSchema = z.strictObject({
  name: z.string().trim().min(1, 'a style needs a name'),
  scale: z.number().finite().min(STYLE_LIMITS.minScale).max(STYLE_LIMITS.maxScale),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256')
    .optional(),
});
export type StyleRef = z.infer<typeof StyleRefSchema>;
export const StylesSchema = z.array(StyleRefSchema).max(STYLE_LIMITS.maxStyles);

export const BoxSchema = z.object({
  x: z.number().finite(),
  y: z.number().finite(),
  w: z.number().finite(),
  h: z.number().finite(),
});
export type Box = z.infer<typeof BoxSchema>;

export const RegionSchema = z.object({
  id: z
    .string()
    .trim()
    .min(1, 'a region id cannot be empty')
    .max(LIMITS.idMax)
    .regex(/^[A-Za-z0-9_-]+$/, 'a region id may only use letters, digits, _ and -'),
  label: z.string().trim().min(1, 'a region needs a label (what is in the box)').max(LIMITS.labelMax),
  prompt: z.string().trim().min(1, 'a region needs a prompt (a detailed description of the box)').max(LIMITS.promptMax),
  box: BoxSchema,
  loras: StylesSchema.optional(),
});
export type Region = z.infer<typeof RegionSchema>;

export const SceneSchema = z.object({
  version: z.literal(SCENE_SCHEMA_VERSION).optional(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  prompt: z
    .string()
    .trim()
    .min(1, 'the scene needs a global prompt')
    .max(LIMITS.promptMax * 2),
  background: z.string().trim().max(LIMITS.promptMax).default(''),
  exclude: z.array(z.string().trim().min(1).max(LIMITS.labelMax)).max(LIMITS.excludeMax).default([]),
  regions: z.array(RegionSchema),
  loras: StylesSchema.optional(),
});
export type Scene = z.infer<typeof SceneSchema>;

/** A region as an edit names it: every field but the id may change. */
export const RegionUpdateSchema = z.object({
  id: RegionSchema.shape.id,
  label: RegionSchema.shape.label.optional(),
  prompt: RegionSchema.shape.prompt.optional(),
  box: BoxSchema.optional(),
  /** The region's styles from now on; `[]` clears them. Unset: unchanged. */
  loras: StylesSchema.optional(),
});
export type RegionUpdate = z.infer<typeof RegionUpdateSchema>;

export const NewRegionSchema = RegionSchema.omit({ id: true });
export type NewRegion = z.infer<typeof NewRegionSchema>;

/**
 * What a reply changes. `change` edits the scene in place (regions kept by id); `start_over` replaces it
 * with a newly planned scene; `clarify` asks the user instead of guessing.
 */
export const EditSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('change'),
    update: z.array(RegionUpdateSchema).default([]),
    add: z.array(NewRegionSchema).default([]),
    remove: z.array(RegionSchema.shape.id).default([]),
    prompt: z
      .string()
      .trim()
      .min(1)
      .max(LIMITS.promptMax * 2)
      .optional(),
    background: z.string().trim().max(LIMITS.promptMax).optional(),
    exclude: z.array(z.string().trim().min(1).max(LIMITS.labelMax)).max(LIMITS.excludeMax).optional(),
    /** The whole picture's styles from now on (a new generation); `[]` clears them. */
    loras: StylesSchema.optional(),
  }),
  z.object({ kind: z.literal('start_over'), description: z.string().trim().min(1).max(2000) }),
  z.object({ kind: z.literal('clarify'), question: z.string().trim().min(1).max(500) }),
]);
export type Edit = z.infer<typeof EditSchema>;
