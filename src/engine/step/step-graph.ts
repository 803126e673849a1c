/**
 * One RAG denoising step as one ONNX graph (RAG-SPEC.md Appendix A, step 6), the same graph for every layout:
 *
 *   main pass      every image token; soft refinement inside each block (If S > 0)
 *   repaint pass   the same block by block, when repainting (If), with its own prompts and SR segments
 *   regional       R streams (hard-binding boxes, then the repaint pre-pass), one Loop iteration each per block,
 *                  with their own prompts, temb and local RoPE ids
 *   capture points after the embedders, every double and single block, and norm_out:
 *                  hard binding pastes the winning box rows into the main pass (If W > 0);
 *                  the repaint pass takes the main pass's rows outside its mask
 *
 * The main and repaint passes are not batched: each runs the shapes a plain generation runs, so a repaint re-runs
 * its parent bit for bit (a batch of two rounds differently from a batch of one on CPU and on cuBLAS).
 *
 * Stream counts and sizes are tensor dimensions (STEP_IO), so one session, one copy of the weights, serves 0–16
 * boxes, any cell grid, δ = 0, repaint with or without Repainting_single, the pre-pass and plain FLUX at any
 * image size; a stream a step does not carry is a zero-length axis and its branch or loop does not run. Loop
 * bodies and branches read the weights of the root graph: nothing is copied per stream. Nodes are emitted block
 * by block across streams, so only the current block's regional rows are alive (upstream keeps 60 captured
 * tensors per box per step).
 */
import { Graph, type Dim, type FloatType, type Value } from '../onnx/graph.ts';
import { forLoop, ifElse } from '../onnx/control.ts';
import {
  add,
  cast,
  concat,
  empty,
  gather,
  greater,
  reshape,
  reshapeTo,
  shapeOf,
  sliceDynamic,
  unsqueeze,
  where,
} from '../onnx/ops.ts';
import { doubleBlock, lin, singleBlock, timeTextEmbed, type Ctx } from '../graphs/transformer.ts';
import { ropeTables } from '../graphs/flux-embeddings.ts';
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import type { NamedWeights } from '../weights/named-weights.ts';
import {
  fullDoubleBlock,
  fullSingleBlock,
  normOut,
  splitRope,
  splitText,
  type Dims,
  type SrSelect,
  type SrState,
} from './blocks.ts';
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

/** A full pass between blocks (main or repaint): image [1, N, D], text [1, L, D], temb [1, D], SR texts [1, S·L, D]. */
interface Full {
  temb: Value;
  img: Value;
  txt: Value;
  srTxt: Value;
}

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
  const streamIn = (n: { latents: string; txt: string; pooled: string }, batch: Dim) => ({
    latents: g.input(n.latents, io, [batch, 'N', C]),
    txt: g.input(n.txt, io, [batch, 'L', J]),
    pooled: g.input(n.pooled, io, [batch, P]),
  });
  const mainIn = streamIn(STEP_IO, 1);
  const rpIn = streamIn(STEP_IO.repaint, 'Fr');
  const rpKeep = g.input(STEP_IO.repaint.keep, io, ['Nk']);
  const rpKeepSingle = g.input(STEP_IO.repaint.keepSingle, io, ['Nk']);
  const srTxtIn = g.input(STEP_IO.srTxt, io, ['S', 'L', J]);
  const rpSrTxtIn = g.input(STEP_IO.repaint.srTxt, io, ['Sr', 'L', J]);
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
  const has = {
    cells: nonEmpty(srSource),
    regions: nonEmpty(rgTxt),
    paste: nonEmpty(pasteRows),
    repaint: nonEmpty(rpIn.latents),
  };
  const dims: Dims = { textLength: shapeOf(txtIds, 0, 1) };

  const ctx = (rope: { cos: Value; sin: Value }): Ctx => ({
    g,
    cfg,
    attn: opts.attention ?? 'mha',
    w: (name) => g.weight(name, weights.source(name)),
    lw: (name) => g.linearWeight(name, weights.source(name)),
    rope,
  });
  // Text first, as the model concatenates [txt_ids; img_ids]. RoPE stays float32 in 16-bit graphs (see rotate()).
  const fullCtx = ctx(
    g.scope('rope', () => ropeTables(concat([txtIds, imgIds], 0), cfg.axesDimsRope, cfg.ropeTheta, opts.ropePrecision)),
  );
  const rope = splitRope(fullCtx, dims.textLength);
  const sel: SrSelect = { on: has.cells, sources: srSource, place: srPlace, delta: toC(srDelta) };
  const nothing = (rank: number) =>
    empty(
      g,
      g.computeType,
      Array.from({ length: rank }, () => 0),
    );

  // --- open the streams: embedders and temb ---
  const open = (s: { latents: Value; txt: Value; pooled: Value }, srIn: Value) => ({
    temb: g.scope('time_text_embed', () => timeTextEmbed(fullCtx, timestep, guidance, toC(s.pooled))),
    img: lin(fullCtx, 'x_embedder', toC(s.latents)),
    txt: lin(fullCtx, 'context_embedder', toC(s.txt)),
    // The SR text streams as [1, S·L, D], the form the per-token ops of the blocks take.
    srTxt: ifElse(
      has.cells,
      () => [g.scope('sr', () => reshapeTo(lin(fullCtx, 'context_embedder', toC(srIn)), g.ints([1, -1, D])))],
      () => [nothing(3)],
    )[0]!,
  });
  let main: Full = g.scope('main', () => open(mainIn, srTxtIn));
  let rp: Full = (() => {
    const [temb, img, txt, srTxt] = ifElse(
      has.repaint,
      () =>
        g.scope('rp', () => {
          const o = open(rpIn, rpSrTxtIn);
          return [o.temb, o.img, o.txt, o.srTxt];
        }),
      () => [nothing(2), nothing(3), nothing(3), nothing(3)],
    );
    return { temb: temb!, img: img!, txt: txt!, srTxt: srTxt! };
  })();
  const [rgImg, rgTxtH, rgTemb, rgTxtCos, rgTxtSin, rgImgCos, rgImgSin] = ifElse(
    has.regions,
    () =>
      g.scope('regional', () => {
        const tables = ropeTables(concat([txtIds, rgImgIds], 0), cfg.axesDimsRope, cfg.ropeTheta, opts.ropePrecision);
        const rc = ctx(tables);
        const split = (t: Value) => ({
          txt: sliceDynamic(t, g.ints([0]), dims.textLength, 0),
          img: sliceDynamic(t, dims.textLength, g.ints([END]), 0),
        });
        const cosP = split(tables.cos);
        const sinP = split(tables.sin);
        return [
          lin(rc, 'x_embedder', toC(rgLatents)),
          lin(rc, 'context_embedder', toC(rgTxt)),
          g.scope('time_text_embed', () => timeTextEmbed(rc, timestep, guidance, toC(rgPooled))),
          cosP.txt,
          sinP.txt,
          cosP.img,
          sinP.img,
        ];
      }),
    () => {
      const table = empty(g, 'float32', [0, 1, cfg.headDim]);
      return [nothing(3), nothing(3), nothing(2), table, table, table, table];
    },
  ) as Value[];
  const rg: Regional = {
    img: rgImg!,
    txt: rgTxtH!,
    temb: rgTemb!,
    txtCos: rgTxtCos!,
    txtSin: rgTxtSin!,
    imgCos: rgImgCos!,
    imgSin: rgImgSin!,
  };

  // --- the capture points ---
  /** Hard binding: writes the winning regional rows into the main pass's h [1, N', D] at row offset `shift`. */
  const paste = (h: Value, rows: Value, shift?: Value) =>
    ifElse(
      has.paste,
      () =>
        g.scope('hb_paste', () => {
          const at = unsqueeze(shift ? add(pasteRows, shift) : pasteRows, [1]);
          return [
            reshape(g.op('ScatterND', [reshape(h, [-1, D]), at, gather(reshape(rows, [-1, D]), pasteFrom, 0)]), [
              1,
              -1,
              D,
            ]),
          ];
        }),
      () => [h],
    )[0]!;
  /** Repaint: the repaint pass keeps its own rows where `keep` is 1 and takes the main pass's elsewhere. */
  const keepOwn = (keep: Value, own: Value, original: Value) =>
    where(reshape(cast(keep, 'bool'), [1, -1, 1]), own, original);

  // --- the regional streams: one Loop iteration per stream, each exactly a plain FLUX block on its own rows ---
  const trips = add(shapeOf(rgOffsets), g.ints([-1]));
  /** One regional stream k ([1] int64) through `body`: its rows sliced out of the state and written back. */
  const region = (k: Value, [img, txt]: Value[], body: RegionBody): Value[] => {
    const a = gather(rgOffsets, k, 0);
    const b = gather(rgOffsets, add(k, g.ints([1])), 0);
    const k1 = add(k, g.ints([1]));
    const c = ctx({
      cos: concat([rg.txtCos, sliceDynamic(rg.imgCos, a, b, 0)], 0),
      sin: concat([rg.txtSin, sliceDynamic(rg.imgSin, a, b, 0)], 0),
    });
    const out = body({
      c,
      img: sliceDynamic(img!, a, b, 1),
      txt: sliceDynamic(txt!, k, k1, 0),
      temb: sliceDynamic(rg.temb, k, k1, 0),
    });
    const put = (all: Value, lo: Value, hi: Value, part: Value, axis: number) =>
      concat([sliceDynamic(all, g.ints([0]), lo, axis), part, sliceDynamic(all, hi, g.ints([END]), axis)], axis);
    return [put(img!, a, b, out.img, 1), out.txt ? put(txt!, k, k1, out.txt, 0) : txt!];
  };
  // A Loop where the provider has one (CPU, CUDA); WebGPU has only If, so there each possible stream is an If.
  const eachRegion = (state: Value[], body: RegionBody): Value[] =>
    opts.regionalLoop === 'unrolled'
      ? Array.from({ length: opts.maxRegions ?? DEFAULT_UNROLLED_REGIONS }).reduce<Value[]>(
          (st, _, r) =>
            ifElse(
              greater(trips, g.ints([r])),
              () => region(g.ints([r]), st, body),
              () => st,
            ),
          state,
        )
      : forLoop(trips, state, (k, st) => region(k, st, body));
  /** The repaint pass's part of a block, run only when the step repaints (else its state passes through). */
  const whenRepainting = (state: Value[], fn: () => Value[]) =>
    ifElse(
      has.repaint,
      () => g.scope('rp', fn),
      () => state,
    );

  // Capture point 0: after the embedders.
  main.img = paste(main.img, rg.img);
  rp.img = whenRepainting([rp.img], () => [keepOwn(rpKeep, rp.img, main.img)])[0]!;

  for (let i = 0; i < cfg.numLayers; i++) {
    g.gateWeightsOn(main.img);
    [rg.img, rg.txt] = g.scope(`regional/transformer_blocks.${i}`, () =>
      eachRegion([rg.img, rg.txt], (r) => doubleBlock(r.c, i, r.img, r.txt, r.temb)),
    ) as [Value, Value];
    const m = fullDoubleBlock(fullCtx, i, main, { txt: main.srTxt }, sel, rope, dims);
    main = { ...main, img: paste(m.img, rg.img), txt: m.txt, srTxt: m.sr.txt };
    const before = rp;
    const [img, txt, srTxt] = whenRepainting([rp.img, rp.txt, rp.srTxt], () => {
      const o = fullDoubleBlock(fullCtx, i, before, { txt: before.srTxt }, sel, rope, dims);
      return [keepOwn(rpKeep, o.img, main.img), o.txt, o.sr.txt];
    });
    rp = { ...rp, img: img!, txt: txt!, srTxt: srTxt! };
  }

  // Into the single blocks: x = [txt; img]; each pass's SR image stream starts from its (pasted / forced) image rows.
  let x = concat([main.txt, main.img], 1);
  let mainSr: SrState = { txt: main.srTxt, img: main.img };
  let rpX = whenRepainting([nothing(3)], () => [concat([rp.txt, rp.img], 1)])[0]!;
  let rpSr: SrState = { txt: rp.srTxt, img: rp.img };
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    g.gateWeightsOn(x);
    [rg.img, rg.txt] = g.scope(`regional/single_transformer_blocks.${i}`, () =>
      eachRegion([rg.img, rg.txt], (r) => {
        const y = splitText(r.c, singleBlock(r.c, i, concat([r.txt, r.img], 1), r.temb), dims.textLength);
        return { img: y.img, txt: y.txt };
      }),
    ) as [Value, Value];
    const m = fullSingleBlock(fullCtx, i, x, main.temb, mainSr, sel, rope, dims);
    // Only the main pass's image rows are pasted; its SR streams keep their own (RAG-SPEC §3.5).
    const pasted = paste(m.x, rg.img, dims.textLength);
    x = pasted;
    mainSr = m.sr;
    const [before, beforeSr] = [rpX, rpSr];
    const [nx, nTxt, nImg] = whenRepainting([rpX, rpSr.txt, rpSr.img!], () => {
      const o = fullSingleBlock(fullCtx, i, before, rp.temb, beforeSr, sel, rope, dims);
      // Repainting_single: the image rows outside the mask are the main pass's (keep_single is all 1 without it).
      const parts = splitText(fullCtx, o.x, dims.textLength);
      return [
        concat([parts.txt, keepOwn(rpKeepSingle, parts.img, splitText(fullCtx, pasted, dims.textLength).img)], 1),
        o.sr.txt,
        o.sr.img!,
      ];
    });
    rpX = nx!;
    rpSr = { txt: nTxt!, img: nImg! };
  }

  // norm_out (the last capture point), then proj_out per stream.
  g.gateWeightsOn(x);
  const [rgNormed] = g.scope('regional/norm_out', () =>
    eachRegion([rg.img, rg.txt], (r) => ({ img: normOut(r.c, r.img, r.temb) })),
  );
  const mainNormed = paste(normOut(fullCtx, splitText(fullCtx, x, dims.textLength).img, main.temb), rgNormed!);
  g.output(cast(lin(fullCtx, 'proj_out', mainNormed), io), STEP_IO.velocity, io, [1, 'N', cfg.outChannels]);
  const finalRp = rpX;
  const rpVelocity = whenRepainting([rpIn.latents], () => {
    const normed = keepOwn(
      rpKeep,
      normOut(fullCtx, splitText(fullCtx, finalRp, dims.textLength).img, rp.temb),
      mainNormed,
    );
    return [cast(lin(fullCtx, 'proj_out', normed), io)];
  })[0]!;
  g.output(rpVelocity, STEP_IO.repaint.velocity, io, ['Fr', 'N', cfg.outChannels]);
  const rgVelocity = ifElse(
    has.regions,
    () => [cast(lin(fullCtx, 'proj_out', rgNormed!), io)],
    () => [rgLatents],
  )[0]!;
  g.output(rgVelocity, STEP_IO.rgVelocity, io, [1, 'T', cfg.outChannels]);
  return g;
}
