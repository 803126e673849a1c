/**
 * One RAG denoising step as one ONNX graph (RAG-SPEC.md Appendix A, step 6): the main pass with soft
 * refinement, the hard-binding regional streams run in lock-step with it block by block (their rows pasted
 * into the main pass after the embedder, every double and single block and norm_out; later boxes win), the
 * repaint pass forced to the main pass outside the mask at the capture points, and the repaint pre-pass as a
 * free regional stream. Nothing but latents and velocities crosses the JS boundary; which streams exist is the
 * StepSignature, everything else (token counts, box sizes, cell sizes, text length) is a symbolic dim fed by
 * small selector inputs (STEP_IO).
 *
 * With the plain signature (no boxes, no cells, no repaint) the graph is exactly graphs/transformer.ts: the same
 * block functions in the same order (δ = 0 therefore gives plain FLUX bit for bit: SR is left out of the graph).
 * Nodes are emitted block by block across streams, so ORT runs the streams in lock-step and only the current
 * block's regional rows are alive (upstream keeps 60 captured tensors per box per step).
 */
import { Graph, type FloatType, type Value } from '../onnx/graph.ts';
import { cast, concat, shapeOf, slice } from '../onnx/ops.ts';
import { doubleBlock, lin, singleBlock, timeTextEmbed, type Ctx } from '../graphs/transformer.ts';
import { ropeTables } from '../graphs/flux-embeddings.ts';
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import {
  doubleBlockSr, keepInside, maskCondition, normOut, scatterIndex, scatterRows, singleBlockSr, splitRope, splitText,
  type SplitRope, type SrSelect,
} from './blocks.ts';
import { checkSignature, signatureKey, STEP_IO, type StepSignature } from './signature.ts';

export interface StepGraphOptions {
  /** Float type inside the graph; I/O stays float32 (JS cannot pass bf16). float32 on CPU, bfloat16 on GPU. */
  computeType?: FloatType;
  /** Attention kernel: com.microsoft.MultiHeadAttention (default) or plain ops. */
  attention?: 'mha' | 'explicit';
  /** How linears multiply: FusedMatMul (default) or plain MatMul(Transpose) (runtime graphFormFor). */
  linear?: 'fused' | 'transpose';
  /** RoPE angle precision ('float32' for providers without double Sin/Cos). */
  ropePrecision?: 'float64' | 'float32';
}

/** A stream through the blocks: image and text hidden states, its own temb, its RoPE context. */
interface Stream {
  c: Ctx;
  temb: Value;
  img: Value;
  txt: Value;
  /** [txt; img] in the single blocks. */
  x?: Value;
}

interface SrStream {
  /** SR text streams [S, L, D]. */
  txt: Value;
  /** The SR image stream of the single blocks. */
  img?: Value;
}

export function buildStepGraph(cfg: FluxTransformerConfig, weights: NamedWeights, sig: StepSignature, opts: StepGraphOptions = {}): Graph {
  checkSignature(sig);
  const g = new Graph(`flux-rag-step-${signatureKey(sig)}`, {
    computeType: opts.computeType ?? 'float32',
    linear: opts.linear,
    doc: `FLUX.1 RAG step (${signatureKey(sig)}) from ${weights.label}`,
  });
  const io = 'float32';
  const C = cfg.inChannels;
  const J = cfg.jointAttentionDim;
  const P = cfg.pooledProjectionDim;
  const attn = opts.attention ?? 'mha';
  const w = (name: string) => g.weight(name, weights.source(name));
  const toC = (v: Value) => cast(v, g.computeType);

  const timestep = g.input(STEP_IO.timestep, io, [1]);
  const guidance = cfg.guidanceEmbeds ? g.input(STEP_IO.guidance, io, [1]) : undefined;
  const imgIds = g.input(STEP_IO.imgIds, io, ['N', 3]);
  const txtIds = g.input(STEP_IO.txtIds, io, ['L', 3]);
  const textLength = shapeOf(txtIds, 0, 1);

  const context = (ids: Value, scope: string): Ctx => ({
    g, cfg, w, attn,
    // Text first, as the model concatenates [txt_ids; img_ids].
    rope: g.scope(scope, () => ropeTables(concat([txtIds, ids], 0), cfg.axesDimsRope, cfg.ropeTheta, opts.ropePrecision)),
  });
  const open = (c: Ctx, scope: string, latents: Value, txt: Value, pooled: Value): Stream => g.scope(scope, () => ({
    c,
    temb: g.scope('time_text_embed', () => timeTextEmbed(c, timestep, guidance, toC(pooled))),
    img: lin(c, 'x_embedder', toC(latents)),
    txt: lin(c, 'context_embedder', toC(txt)),
  }));
  const streamInputs = (names: { latents: string; txt: string; pooled: string }, tokens: string) => ({
    latents: g.input(names.latents, io, [1, tokens, C]),
    txt: g.input(names.txt, io, [1, 'L', J]),
    pooled: g.input(names.pooled, io, [1, P]),
  });

  const mainCtx = context(imgIds, 'rope');
  const mainIn = streamInputs(STEP_IO, 'N');
  const main = open(mainCtx, 'main', mainIn.latents, mainIn.txt, mainIn.pooled);

  // Soft refinement: cell selectors and δ, shared by the main and the repaint pass.
  let sel: SrSelect | undefined;
  let rope: SplitRope | undefined;
  let mainSr: SrStream | undefined;
  if (sig.cells > 0) {
    const delta = toC(g.input(STEP_IO.srDelta, io, [2]));
    sel = {
      sources: Array.from({ length: sig.cells }, (_, j) => g.input(STEP_IO.srSource(j), 'int64', [`N${j}`])),
      place: g.input(STEP_IO.srPlace, 'int64', ['N']),
      delta: slice(delta, [0], [1], [0]),
      oneMinusDelta: slice(delta, [1], [2], [0]),
    };
    rope = splitRope(mainCtx, textLength);
    const srTxt = g.input(STEP_IO.srTxt, io, [sig.cells, 'L', J]);
    mainSr = { txt: g.scope('main_sr', () => lin(mainCtx, 'context_embedder', toC(srTxt))) };
  }

  // Hard-binding boxes: regional streams with local ids, and where their rows go.
  const boxes = Array.from({ length: sig.boxes }, (_, k) => {
    const n = STEP_IO.box(k);
    const tokens = `M${k}`;
    const ids = g.input(n.imgIds, io, [tokens, 3]);
    const inp = streamInputs(n, tokens);
    const index = g.input(n.index, 'int64', [tokens]);
    return {
      s: open(context(ids, `hb${k}_rope`), `hb${k}`, inp.latents, inp.txt, inp.pooled),
      rows: scatterIndex(index),
      rowsX: scatterIndex(index, textLength),
      out: n.velocity,
    };
  });
  const prepass = sig.prepass
    ? (() => {
        const n = STEP_IO.prepass;
        const ids = g.input(n.imgIds, io, ['Mpp', 3]);
        const inp = streamInputs(n, 'Mpp');
        return { s: open(context(ids, 'pp_rope'), 'pp', inp.latents, inp.txt, inp.pooled), out: n.velocity };
      })()
    : undefined;

  // The repaint pass: global ids (the main pass's RoPE tables), its own prompts and SR streams.
  let rp: { s: Stream; sr?: SrStream; inside: Value } | undefined;
  if (sig.repaint) {
    const n = STEP_IO.repaint;
    const inp = streamInputs(n, 'N');
    const s = open(mainCtx, 'rp', inp.latents, inp.txt, inp.pooled);
    const srTxt = sig.cells > 0 ? g.input(n.srTxt, io, [sig.cells, 'L', J]) : undefined;
    rp = {
      s,
      sr: srTxt ? { txt: g.scope('rp_sr', () => lin(mainCtx, 'context_embedder', toC(srTxt))) } : undefined,
      inside: maskCondition(g.input(n.mask, io, ['N'])),
    };
  }

  const regional = [...boxes.map((b) => b.s), ...(prepass ? [prepass.s] : [])];
  const pasteBoxes = (h: Value, pick: (s: Stream) => Value, rowsOf: (b: (typeof boxes)[number]) => Value) =>
    boxes.reduce((acc, b) => scatterRows(mainCtx, acc, rowsOf(b), pick(b.s)), h);
  const imagePart = (x: Value) => splitText(mainCtx, x, textLength).img;

  // Capture point 0: after the embedders.
  main.img = pasteBoxes(main.img, (s) => s.img, (b) => b.rows);
  if (rp) rp.s.img = keepInside(rp.inside, rp.s.img, main.img);

  const double = (s: Stream, sr: SrStream | undefined, i: number) => {
    if (sr && sel && rope) {
      const out = doubleBlockSr(s.c, i, s.img, s.txt, sr.txt, s.temb, sel, rope, textLength);
      sr.txt = out.srTxt;
      s.img = out.img;
      s.txt = out.txt;
    } else {
      ({ img: s.img, txt: s.txt } = doubleBlock(s.c, i, s.img, s.txt, s.temb));
    }
  };
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const s of regional) double(s, undefined, i);
    double(main, mainSr, i);
    main.img = pasteBoxes(main.img, (s) => s.img, (b) => b.rows);
    if (rp) {
      double(rp.s, rp.sr, i);
      rp.s.img = keepInside(rp.inside, rp.s.img, main.img);
    }
  }

  // Into the single blocks: x = [txt; img]; the SR image stream starts from the (pasted / forced) image rows.
  for (const s of [...regional, main, ...(rp ? [rp.s] : [])]) s.x = concat([s.txt, s.img], 1);
  if (mainSr) mainSr.img = main.img;
  if (rp?.sr) rp.sr.img = rp.s.img;
  const single = (s: Stream, sr: SrStream | undefined, i: number) => {
    if (sr?.img && sel && rope) {
      const out = singleBlockSr(s.c, i, s.x!, sr.img, sr.txt, s.temb, sel, rope, textLength);
      s.x = out.x;
      sr.img = out.srImg;
      sr.txt = out.srTxt;
    } else {
      s.x = singleBlock(s.c, i, s.x!, s.temb);
    }
  };
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    for (const s of regional) single(s, undefined, i);
    single(main, mainSr, i);
    // Only the main pass's image rows are pasted; its SR streams keep their own (RAG-SPEC §3.5).
    main.x = pasteBoxes(main.x!, (s) => imagePart(s.x!), (b) => b.rowsX);
    if (rp) {
      single(rp.s, rp.sr, i);
      if (sig.repaintSingle) {
        const parts = splitText(mainCtx, rp.s.x!, textLength);
        rp.s.x = concat([parts.txt, keepInside(rp.inside, parts.img, imagePart(main.x))], 1);
      }
    }
  }

  // norm_out (the last capture point), then proj_out per stream.
  const velocity = (s: Stream, normed: Value, name: string, tokens: string) => {
    g.output(cast(lin(s.c, 'proj_out', normed), io), name, io, [1, tokens, cfg.outChannels]);
  };
  const normedOf = new Map<Stream, Value>();
  for (const s of regional) normedOf.set(s, normOut(s.c, imagePart(s.x!), s.temb));
  let mainNormed = normOut(mainCtx, imagePart(main.x!), main.temb);
  mainNormed = pasteBoxes(mainNormed, (s) => normedOf.get(s)!, (b) => b.rows);
  velocity(main, mainNormed, STEP_IO.velocity, 'N');
  boxes.forEach((b, k) => velocity(b.s, normedOf.get(b.s)!, b.out, `M${k}`));
  if (prepass) velocity(prepass.s, normedOf.get(prepass.s)!, prepass.out, 'Mpp');
  if (rp) {
    const normed = keepInside(rp.inside, normOut(mainCtx, imagePart(rp.s.x!), rp.s.temb), mainNormed);
    velocity(rp.s, normed, STEP_IO.repaint.velocity, 'N');
  }
  return g;
}
