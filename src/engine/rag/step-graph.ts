/**
 * One RAG denoising step as one ONNX graph (RAG-SPEC.md Appendix A, step 6), the same graph for every layout:
 *
 *   full streams   F = 1 (main pass) or 2 (+ repaint pass), batched: soft refinement inside each block (If S > 0)
 *   regional       R streams (hard-binding boxes, then the repaint pre-pass), one Loop iteration each per block,
 *                  with their own prompts, temb and local RoPE ids
 *   capture points after the embedders, every double and single block, and norm_out:
 *                  hard binding pastes the winning box rows into the main pass (If W > 0);
 *                  the repaint pass takes the main pass's rows outside its mask (If F > 1)
 *
 * Stream counts and sizes are tensor dimensions (STEP_IO), so one session, one copy of the weights, serves 1–16
 * boxes, any cell grid, δ = 0, repaint with or without Repainting_single, the pre-pass and plain FLUX at any
 * image size; a stream a step does not carry is a zero-length axis and its branch or loop does not run. Loop
 * bodies and branches read the weights of the root graph: nothing is copied per stream. Nodes are emitted block
 * by block across streams, so only the current block's regional rows are alive (upstream keeps 60 captured
 * tensors per box per step).
 */
import { Graph, type FloatType, type Value } from '../onnx/graph.ts';
import { forLoop, ifElse } from '../onnx/control.ts';
import { add, cast, concat, empty, gather, greater, reshape, reshapeTo, shapeOf, sliceDynamic, unsqueeze } from '../onnx/ops.ts';
import { doubleBlock, lin, singleBlock, timeTextEmbed, type Ctx } from '../graphs/transformer.ts';
import { ropeTables } from '../graphs/flux-embeddings.ts';
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import { fullDoubleBlock, fullSingleBlock, keepOwn, normOut, splitRope, splitText, type Dims, type SrSelect, type SrState } from './blocks.ts';
import { STEP_IO } from './signature.ts';

export interface StepGraphOptions {
  /** Float type inside the graph; I/O stays float32 (JS cannot pass bf16). float32 on CPU, bfloat16 on GPU. */
  computeType?: FloatType;
  /** Attention kernel: com.microsoft.MultiHeadAttention (default) or plain ops. */
  attention?: 'mha' | 'explicit';
  /** How linears multiply: FusedMatMul (default) or plain MatMul(Transpose) (runtime graphFormFor). */
  linear?: 'fused' | 'transpose';
  /** RoPE angle precision ('float32' for providers without double Sin/Cos). */
  ropePrecision?: 'float64' | 'float32';
  /** Regional streams as one ONNX Loop (default) or as `maxRegions` If nodes, for providers without Loop (WebGPU). */
  regionalLoop?: 'loop' | 'unrolled';
  maxRegions?: number;
}

const END = Number.MAX_SAFE_INTEGER;

/** Regional streams an unrolled graph (regionalLoop 'unrolled') can carry: 8 boxes and the repaint pre-pass. */
export const DEFAULT_UNROLLED_REGIONS = 9;

type RegionBody = (r: { c: Ctx; img: Value; txt: Value; temb: Value }) => { img: Value; txt?: Value };

/** The regional streams between blocks: image rows of every stream [1, T, D], texts [R, L, D], temb [R, D]. */
interface Regional {
  img: Value;
  txt: Value;
  temb: Value;
  /** RoPE of the shared text rows [L, 1, Dh] and of every regional image row [T, 1, Dh]. */
  txtCos: Value;
  txtSin: Value;
  imgCos: Value;
  imgSin: Value;
}

export function buildStepGraph(cfg: FluxTransformerConfig, weights: NamedWeights, opts: StepGraphOptions = {}): Graph {
  const g = new Graph('flux-rag-step', {
    computeType: opts.computeType ?? 'float32',
    linear: opts.linear,
    doc: `FLUX.1 RAG step from ${weights.label}`,
  });
  const io = 'float32';
  const C = cfg.inChannels;
  const J = cfg.jointAttentionDim;
  const P = cfg.pooledProjectionDim;
  const D = cfg.inner;
  const toC = (v: Value) => cast(v, g.computeType);

  const timestep = g.input(STEP_IO.timestep, io, [1]);
  const guidance = cfg.guidanceEmbeds ? g.input(STEP_IO.guidance, io, [1]) : undefined;
  const imgIds = g.input(STEP_IO.imgIds, io, ['N', 3]);
  const txtIds = g.input(STEP_IO.txtIds, io, ['L', 3]);
  const latents = g.input(STEP_IO.latents, io, ['F', 'N', C]);
  const txt = g.input(STEP_IO.txt, io, ['F', 'L', J]);
  const pooled = g.input(STEP_IO.pooled, io, ['F', P]);
  const keep = reshape(cast(g.input(STEP_IO.keep, io, ['F', 'N']), 'bool'), [0, -1, 1]);
  const keepSingle = reshape(cast(g.input(STEP_IO.keepSingle, io, ['F', 'N']), 'bool'), [0, -1, 1]);
  const srTxtIn = g.input(STEP_IO.srTxt, io, ['FS', 'L', J]);
  const srDelta = g.input(STEP_IO.srDelta, io, [1]);
  const srSource = g.input(STEP_IO.srSource, 'int64', ['S', 'Q']);
  const srPlace = g.input(STEP_IO.srPlace, 'int64', ['Ns']);
  const rgLatents = g.input(STEP_IO.rgLatents, io, [1, 'T', C]);
  const rgImgIds = g.input(STEP_IO.rgImgIds, io, ['T', 3]);
  const rgOffsets = g.input(STEP_IO.rgOffsets, 'int64', ['R1']);
  const rgTxt = g.input(STEP_IO.rgTxt, io, ['R', 'L', J]);
  const rgPooled = g.input(STEP_IO.rgPooled, io, ['R', P]);
  const pasteRows = g.input(STEP_IO.pasteRows, 'int64', ['W']);
  const pasteFrom = g.input(STEP_IO.pasteFrom, 'int64', ['W']);

  // Which streams this step carries, read from its inputs' shapes.
  const nonEmpty = (x: Value) => greater(shapeOf(x, 0, 1), g.ints([0]));
  const has = { cells: nonEmpty(srSource), regions: nonEmpty(rgTxt), paste: nonEmpty(pasteRows), repaint: greater(shapeOf(latents, 0, 1), g.ints([1])) };
  const dims: Dims = { streams: shapeOf(latents, 0, 1), textLength: shapeOf(txtIds, 0, 1) };

  const ctx = (rope: { cos: Value; sin: Value }): Ctx => ({ g, cfg, attn: opts.attention ?? 'mha', w: (name) => g.weight(name, weights.source(name)), rope });
  // Text first, as the model concatenates [txt_ids; img_ids]. RoPE stays float32 in 16-bit graphs (see rotate()).
  const fullCtx = ctx(g.scope('rope', () => ropeTables(concat([txtIds, imgIds], 0), cfg.axesDimsRope, cfg.ropeTheta, opts.ropePrecision)));
  const rope = splitRope(fullCtx, dims.textLength);
  const sel: SrSelect = { on: has.cells, sources: srSource, place: srPlace, delta: toC(srDelta) };

  // --- open the streams: embedders and temb ---
  let full = g.scope('full', () => ({
    temb: g.scope('time_text_embed', () => timeTextEmbed(fullCtx, timestep, guidance, toC(pooled))),
    img: lin(fullCtx, 'x_embedder', toC(latents)),
    txt: lin(fullCtx, 'context_embedder', toC(txt)),
  }));
  const nothing = (rank: number) => empty(g, g.computeType, Array.from({ length: rank }, () => 0));
  // SR text streams as [F, S·L, D], the form the per-token ops of the blocks take.
  let sr: SrState = {
    txt: ifElse(has.cells, () => [g.scope('sr', () => reshapeTo(lin(fullCtx, 'context_embedder', toC(srTxtIn)), concat([dims.streams, g.ints([-1, D])], 0)))], () => [nothing(3)])[0]!,
  };
  const [rgImg, rgTxtH, rgTemb, rgTxtCos, rgTxtSin, rgImgCos, rgImgSin] = ifElse(has.regions, () => g.scope('regional', () => {
    const tables = ropeTables(concat([txtIds, rgImgIds], 0), cfg.axesDimsRope, cfg.ropeTheta, opts.ropePrecision);
    const rc = ctx(tables);
    const split = (t: Value) => ({ txt: sliceDynamic(t, g.ints([0]), dims.textLength, 0), img: sliceDynamic(t, dims.textLength, g.ints([END]), 0) });
    const cosP = split(tables.cos);
    const sinP = split(tables.sin);
    return [
      lin(rc, 'x_embedder', toC(rgLatents)), lin(rc, 'context_embedder', toC(rgTxt)),
      g.scope('time_text_embed', () => timeTextEmbed(rc, timestep, guidance, toC(rgPooled))),
      cosP.txt, sinP.txt, cosP.img, sinP.img,
    ];
  }), () => {
    const table = empty(g, 'float32', [0, 1, cfg.headDim]);
    return [nothing(3), nothing(3), nothing(2), table, table, table, table];
  }) as Value[];
  const rg: Regional = { img: rgImg!, txt: rgTxtH!, temb: rgTemb!, txtCos: rgTxtCos!, txtSin: rgTxtSin!, imgCos: rgImgCos!, imgSin: rgImgSin! };

  // --- the capture points: hard binding's paste into the main pass, then repaint's forcing ---
  /** Writes the winning regional rows into stream 0 of h [F, N', D] at row offset `shift` (0, or L in [txt; img]). */
  const paste = (h: Value, rows: Value, shift?: Value) => ifElse(has.paste, () => g.scope('hb_paste', () => {
    const at = shift ? add(pasteRows, shift) : pasteRows;
    const stream0 = g.op('Mul', [at, g.ints([0])]);
    const index = concat([unsqueeze(stream0, [1]), unsqueeze(at, [1])], 1);
    return [g.op('ScatterND', [h, index, gather(reshape(rows, [-1, D]), pasteFrom, 0)])];
  }), () => [h])[0]!;
  const force = (h: Value) => ifElse(has.repaint, () => [g.scope('rp_force', () => keepOwn(keep, h))], () => [h])[0]!;
  const capture = (h: Value, rows: Value) => force(paste(h, rows));

  // --- the regional streams: one Loop iteration per stream, each exactly a plain FLUX block on its own rows ---
  const trips = add(shapeOf(rgOffsets), g.ints([-1]));
  /** One regional stream k ([1] int64) through `body`: its rows sliced out of the state and written back. */
  const region = (k: Value, [img, txt]: Value[], body: RegionBody): Value[] => {
    const a = gather(rgOffsets, k, 0);
    const b = gather(rgOffsets, add(k, g.ints([1])), 0);
    const k1 = add(k, g.ints([1]));
    const c = ctx({ cos: concat([rg.txtCos, sliceDynamic(rg.imgCos, a, b, 0)], 0), sin: concat([rg.txtSin, sliceDynamic(rg.imgSin, a, b, 0)], 0) });
    const out = body({ c, img: sliceDynamic(img!, a, b, 1), txt: sliceDynamic(txt!, k, k1, 0), temb: sliceDynamic(rg.temb, k, k1, 0) });
    const put = (all: Value, lo: Value, hi: Value, part: Value, axis: number) =>
      concat([sliceDynamic(all, g.ints([0]), lo, axis), part, sliceDynamic(all, hi, g.ints([END]), axis)], axis);
    return [put(img!, a, b, out.img, 1), out.txt ? put(txt!, k, k1, out.txt, 0) : txt!];
  };
  // A Loop where the provider has one (CPU, CUDA); WebGPU has only If, so there each possible stream is an If.
  const eachRegion = (state: Value[], body: RegionBody): Value[] => opts.regionalLoop === 'unrolled'
    ? Array.from({ length: opts.maxRegions ?? DEFAULT_UNROLLED_REGIONS }).reduce<Value[]>((st, _, r) =>
        ifElse(greater(trips, g.ints([r])), () => region(g.ints([r]), st, body), () => st), state)
    : forLoop(trips, state, (k, st) => region(k, st, body));

  full.img = capture(full.img, rg.img);
  for (let i = 0; i < cfg.numLayers; i++) {
    [rg.img, rg.txt] = g.scope(`regional/transformer_blocks.${i}`, () => eachRegion([rg.img, rg.txt], (r) => doubleBlock(r.c, i, r.img, r.txt, r.temb))) as [Value, Value];
    const out = fullDoubleBlock(fullCtx, i, full, sr, sel, rope, dims);
    full = { ...full, img: capture(out.img, rg.img), txt: out.txt };
    sr = out.sr;
  }

  // Into the single blocks: x = [txt; img]; the SR image stream starts from the (pasted / forced) image rows.
  let x = concat([full.txt, full.img], 1);
  sr = { txt: sr.txt, img: full.img };
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    [rg.img, rg.txt] = g.scope(`regional/single_transformer_blocks.${i}`, () => eachRegion([rg.img, rg.txt], (r) => {
      const y = splitText(r.c, singleBlock(r.c, i, concat([r.txt, r.img], 1), r.temb), dims.textLength);
      return { img: y.img, txt: y.txt };
    })) as [Value, Value];
    const out = fullSingleBlock(fullCtx, i, x, full.temb, sr, sel, rope, dims);
    sr = out.sr;
    // Only the main pass's image rows are pasted; its SR streams keep their own (RAG-SPEC §3.5).
    x = paste(out.x, rg.img, dims.textLength);
    // Repainting_single: the repaint pass's image rows outside the mask are the main pass's (keep_single is all 1
    // without it).
    const pasted = x;
    x = ifElse(has.repaint, () => g.scope('rp_force_single', () => {
      const parts = splitText(fullCtx, pasted, dims.textLength);
      return [concat([parts.txt, keepOwn(keepSingle, parts.img)], 1)];
    }), () => [pasted])[0]!;
  }

  // norm_out (the last capture point), then proj_out per stream.
  const [rgNormed] = g.scope('regional/norm_out', () => eachRegion([rg.img, rg.txt], (r) => ({ img: normOut(r.c, r.img, r.temb) })));
  const normed = capture(normOut(fullCtx, splitText(fullCtx, x, dims.textLength).img, full.temb), rgNormed!);
  g.output(cast(lin(fullCtx, 'proj_out', normed), io), STEP_IO.velocity, io, ['F', 'N', cfg.outChannels]);
  const rgVelocity = ifElse(has.regions, () => [cast(lin(fullCtx, 'proj_out', rgNormed!), io)], () => [rgLatents])[0]!;
  g.output(rgVelocity, STEP_IO.rgVelocity, io, [1, 'T', cfg.outChannels]);
  return g;
}
