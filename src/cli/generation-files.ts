/**
 * A generation saved as a folder by the CLI (`generate/repaint --save-generation <dir>`), so that `repaint --from
 * <dir>` can edit it, and an edit of that, and so on: generation.json (kind, Scene if any, RAG parameters with
 * the mask as a file name), image.png, trajectory.safetensors, mask.png for a repaint.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../config/errors.ts';
import type { RagParams } from '../rag/params.ts';
import { SceneSchema, type Scene } from '../scene/schema.ts';
import type { JobOutput } from '../engine/pipeline/jobs.ts';
import { TRAJECTORY_ARTIFACT } from '../engine/pipeline/trajectory.ts';

export const GENERATION_FILE = 'generation.json';

const GenerationFileSchema = z.object({
  kind: z.enum(['generate', 'repaint']),
  model: z.string(),
  version: z.string(),
  scene: SceneSchema.optional(),
  rag: z.record(z.string(), z.unknown()),
});
export type GenerationFile = z.infer<typeof GenerationFileSchema>;

export interface SavedGeneration {
  dir: string;
  kind: 'generate' | 'repaint';
  /** The model it was painted with (models/<id>.json's id). */
  model: string;
  scene?: Scene;
  /** With Repainting_mask as an absolute path when it is a repaint. */
  rag: RagParams;
  image: string;
  trajectory: string;
}

export function saveGeneration(
  dir: string,
  o: { out: JobOutput; rag: RagParams; scene?: Scene; model: string; version: string },
): void {
  mkdirSync(dir, { recursive: true });
  const rag: Record<string, unknown> = { ...o.rag };
  if (o.rag.Repainting_mask !== undefined) {
    const mask =
      typeof o.rag.Repainting_mask === 'string' ? readFileSync(o.rag.Repainting_mask) : o.rag.Repainting_mask;
    writeFileSync(path.join(dir, 'mask.png'), mask);
    rag.Repainting_mask = 'mask.png';
  }
  const file: GenerationFile = {
    kind: o.out.plan.repaint ? 'repaint' : 'generate',
    model: o.model,
    version: o.version,
    ...(o.scene ? { scene: o.scene } : {}),
    rag,
  };
  writeFileSync(path.join(dir, GENERATION_FILE), `${JSON.stringify(file, null, 2)}\n`);
  writeFileSync(path.join(dir, 'image.png'), o.out.image);
  for (const [name, bytes] of Object.entries(o.out.artifacts)) writeFileSync(path.join(dir, name), bytes);
}

export function isGenerationDir(p: string): boolean {
  return existsSync(path.join(p, GENERATION_FILE));
}

export function loadGeneration(dir: string): SavedGeneration {
  const file = path.join(dir, GENERATION_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const parsed = GenerationFileSchema.safeParse(raw);
  if (!parsed.success)
    throw new UserError(
      `${file} is not a saved generation: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const rag = { ...parsed.data.rag } as RagParams;
  if (typeof rag.Repainting_mask === 'string' && !path.isAbsolute(rag.Repainting_mask))
    rag.Repainting_mask = path.join(dir, rag.Repainting_mask);
  return {
    dir,
    kind: parsed.data.kind,
    model: parsed.data.model,
    ...(parsed.data.scene ? { scene: parsed.data.scene } : {}),
    rag,
    image: path.join(dir, 'image.png'),
    trajectory: path.join(dir, TRAJECTORY_ARTIFACT),
  };
}
