/**
 * A job's styles, made concrete on the machine that paints it: every style name in the request (its passes, and
 * its parent's, which a repaint re-runs) becomes the absolute path of this worker's own file, after checking the
 * file's hash against the one pinned when the request was made. Runs in the worker host, before the painter
 * process sees the job, so that a worker lacking a style fails the job at once with a message naming it.
 */
import type { PaintRequest } from '../queue/schema.ts';
import type { RagParams } from '../rag/params.ts';
import { resolveStyles, type StyleSource } from '../paint/styles.ts';
import type { GenerationParams } from '../store/schema.ts';

function isPass(x: unknown): x is RagParams {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && 'HB_prompt_list' in x;
}

async function resolveParams(p: GenerationParams, o: StyleSource): Promise<GenerationParams> {
  const out: GenerationParams = { ...p };
  if (p.passes) out.passes = await resolveStyles(p.passes, o);
  if (isPass(p.rag)) [out.rag] = await resolveStyles([p.rag], o);
  return out;
}

/** The request with style paths in place of names; throws MissingStyleError naming a style this worker lacks. */
export async function resolveRequestStyles(request: PaintRequest, o: StyleSource): Promise<PaintRequest> {
  return {
    ...request,
    params: await resolveParams(request.params, o),
    ...(request.parent ? { parent: { ...request.parent, params: await resolveParams(request.parent.params, o) } } : {}),
  };
}
