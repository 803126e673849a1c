/**
 * What one denoising step carries. Since every step of every layout runs on ONE graph (step-graph.ts) whose
 * stream counts are tensor dimensions, the signature no longer picks a session: it names the kind of step for
 * statistics, the FLOP model (cost.ts) and the benchmarks.
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

export const PLAIN_SIGNATURE: StepSignature = {
  boxes: 0,
  cells: 0,
  repaint: false,
  repaintSingle: false,
  prepass: false,
};

export function signatureKey(s: StepSignature): string {
  const parts = [`k${s.boxes}`, `s${s.cells}`];
  if (s.repaint) parts.push(s.repaintSingle ? 'rp1' : 'rp0');
  if (s.prepass) parts.push('pp');
  return parts.join('-');
}

/**
 * Graph input and output names (float32 unless said otherwise). A stream the step does not carry is fed with a
 * zero-length axis (no regional streams: R = 0; no cells: S = 0; no repaint pass: its batch is 0).
 */
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
  /** SR: T5 of each of the main pass's cell segments [S, L, J]; δ [1]. */
  srTxt: 'sr_txt',
  srDelta: 'sr_delta',
  /** int64 [S, Q]: per cell the image tokens its crop queries, padded to the largest crop Q. */
  srSource: 'sr_src',
  /** int64 [N]: where composite token t sits in the cells' query rows flattened to [S·Q]. */
  srPlace: 'sr_place',
  /**
   * The repaint pass, batch Fr = 1 (or 0 without one): latents [Fr, N, 64], T5 [Fr, L, J], pooled [Fr, P], its SR
   * segments [S, L, J]; keep [N]: 1 where it keeps its own row at the capture points, 0 where it takes the main
   * pass's; keep_single [N]: the same after every single block (all 1 unless Repainting_single). Output [Fr, N, 64].
   */
  repaint: {
    latents: 'rp_latents',
    txt: 'rp_txt',
    pooled: 'rp_pooled',
    srTxt: 'rp_sr_txt',
    keep: 'rp_keep',
    keepSingle: 'rp_keep_single',
    velocity: 'rp_velocity',
  },
  /**
   * Regional streams (hard-binding boxes in list order, then the repaint pre-pass), their image tokens
   * concatenated: packed latents [1, T, 64], local ids [T, 3], stream r's rows [offsets[r], offsets[r+1]) of
   * int64 offsets [R + 1]; T5 [R, L, J]; pooled [R, P].
   */
  rgLatents: 'rg_latents',
  rgImgIds: 'rg_img_ids',
  rgOffsets: 'rg_offsets',
  rgTxt: 'rg_txt',
  rgPooled: 'rg_pooled',
  /** Output: every regional stream's velocity [1, T, 64]. */
  rgVelocity: 'rg_velocity',
  /**
   * Hard binding's paste, resolved on the host so that each global token is written once by the box that wins it
   * (the later box): int64 [W] global token indices and [W] the regional rows they take.
   */
  pasteRows: 'hb_rows',
  pasteFrom: 'hb_from',
} as const;
