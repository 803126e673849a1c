/**
 * The shape signature of one denoising step: which streams the step graph carries. Every step of every RAG
 * generation is one run() of the graph built for its signature (step-graph.ts), so sessions are cached by it.
 * Sizes that change between generations (image tokens, box and cell token counts, text length) are symbolic
 * dims of the graph, not part of the signature.
 */
export interface StepSignature {
  /** Hard-binding regional streams injected into the main pass (during HB steps i < HB_replace; 0 after). */
  boxes: number;
  /** Soft-refinement cells, one extra text stream each (0 = SR off, which δ = 0 selects). */
  cells: number;
  /** A repaint pass in lock-step with the main pass, forced to it outside the mask at the capture points. */
  repaint: boolean;
  /** Repainting_single: the repaint pass also takes the outside-mask rows after every single block. */
  repaintSingle: boolean;
  /** A free regional stream (plain FLUX, no injection): the repaint pre-pass on the mask's bounding box. */
  prepass: boolean;
}

export const PLAIN_SIGNATURE: StepSignature = { boxes: 0, cells: 0, repaint: false, repaintSingle: false, prepass: false };

export function signatureKey(s: StepSignature): string {
  const parts = [`k${s.boxes}`, `s${s.cells}`];
  if (s.repaint) parts.push(s.repaintSingle ? 'rp1' : 'rp0');
  if (s.prepass) parts.push('pp');
  return parts.join('-');
}

export function checkSignature(s: StepSignature): void {
  if (!Number.isInteger(s.boxes) || s.boxes < 0) throw new Error(`step signature: boxes must be a whole number ≥ 0 (got ${s.boxes})`);
  if (!Number.isInteger(s.cells) || s.cells < 0 || s.cells === 1) throw new Error(`step signature: cells must be 0 or ≥ 2 (got ${s.cells})`);
  if (s.repaintSingle && !s.repaint) throw new Error('step signature: repaintSingle needs repaint');
}

/** Graph input and output names (float32 unless said otherwise). */
export const STEP_IO = {
  /** σ as the model sees it: float32(float32(σ·1000)/1000), [1]. */
  timestep: 'timestep',
  /** Guidance scale [1] (dev only). */
  guidance: 'guidance',
  /** Global image ids [N, 3] and text ids [L, 3], shared by the main and the repaint pass. */
  imgIds: 'img_ids',
  txtIds: 'txt_ids',
  /** Main pass: packed latents [1, N, 64], T5 [1, L, J], CLIP pooled [1, P]. */
  latents: 'latents',
  txt: 'txt',
  pooled: 'pooled',
  /** Output: the main pass's velocity [1, N, 64]. */
  velocity: 'velocity',
  /** SR: T5 of each cell's segment [S, L, J]; [δ, 1 − δ] (both rounded from float64); per cell the int64 token list. */
  srTxt: 'sr_txt',
  srDelta: 'sr_delta',
  srSource: (j: number) => `sr_src_${j}`,
  /** int64 [N]: where composite token t sits in the concatenation of the cells' query lists. */
  srPlace: 'sr_place',
  box: (k: number) => ({
    latents: `hb${k}_latents`,
    txt: `hb${k}_txt`,
    pooled: `hb${k}_pooled`,
    imgIds: `hb${k}_img_ids`,
    /** int64 [M]: the global token index of each box token (row-major inside the box). */
    index: `hb${k}_index`,
    velocity: `hb${k}_velocity`,
  }),
  repaint: { latents: 'rp_latents', txt: 'rp_txt', pooled: 'rp_pooled', srTxt: 'rp_sr_txt', mask: 'rp_mask', velocity: 'rp_velocity' },
  prepass: { latents: 'pp_latents', txt: 'pp_txt', pooled: 'pp_pooled', imgIds: 'pp_img_ids', velocity: 'pp_velocity' },
} as const;
