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
  type SrStreams,
} from './blocks.ts';
import { ifThen } from './named-control.ts';
import { openRegional, type RegionalInputs } from './regional.ts';
import { STEP_IO } from './signature.ts';
import { declareLoraInputs, fullTables, loraLayers, type LoraInputs, type LoraTables } from '../lora/graph.ts';

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
  /** LoRA inputs (lora/graph.ts); false builds the graph as it was before styles (benchmarks compare the two). */
  lora?: boolean;
}

/** One stream's conditioning inputs: packed latents [B, N, C], T5 [B, L, J], CLIP pooled [B, P]. */
type StreamInputs = { latents: Value; txt: Value; pooled: Value };

/** The graph inputs by stream (STEP_IO names them; a stream a step does not carry has a zero-length axis). */
interface StepInputs {
  timestep: Value;
  guidance?: Value;
  imgIds: Value;
  txtIds: Value;
  /** The main pass, with its SR segments' T5 [S, L, J]. */
  main: StreamInputs & { srTxt: Value };
  /** The repaint pass (batch 0 or 1), its SR segments, and where it keeps its own rows: keep (capture points
   * 0–19 and norm_out), keepSingle (the single blocks; all 1 without Repainting_single). */
  repaint: StreamInputs & { srTxt: Value; keep: Value; keepSingle: Value };
  /** Soft refinement: δ [1], each cell's source tokens [S, Q], the composite's rows [Ns]. */
  sr: { delta: Value; source: Value; place: Value };
  regional: RegionalInputs;
  /** Hard binding's paste: main-pass rows and the regional rows that win them. */
  paste: { rows: Value; from: Value };
  /** LoRA factors per layer and each stream's LoRA weights (lora/graph.ts); absent in a graph built without. */
  lora?: LoraInputs;
}

/** A full pass (main or repaint) in the double blocks: image h [1, N, D], text e [1, L, D], temb [1, D], and its
 * SR text streams e_j as [1, S·L, D] (RAG-SPEC §3.4). */
type DoublePass = { temb: Value; img: Value; txt: Value; srTxt: Value };

/** A full pass in the single blocks: x = [e; h] [1, L + N, D] and its SR streams s_j (RAG-SPEC §3.5). */
type SinglePass = { temb: Value; x: Value; sr: SrStreams };

function declareInputs(g: Graph, cfg: FluxTransformerConfig, weights: NamedWeights, withLora: boolean): StepInputs {
  const io = 'float32';
  const C = cfg.inChannels;
  const J = cfg.jointAttentionDim;
  const P = cfg.pooledProjectionDim;
  const streamIn = (n: { latents: string; txt: string; pooled: string }, batch: Dim): StreamInputs => ({
    latents: g.input(n.latents, io, [batch, 'N', C]),
    txt: g.input(n.txt, io, [batch, 'L', J]),
    pooled: g.input(n.pooled, io, [batch, P]),
  });
  // Declared in STEP_IO's order, which is the graph's input order.
  const timestep = g.input(STEP_IO.timestep, io, [1]);
  const guidance = cfg.guidanceEmbeds ? g.input(STEP_IO.guidance, io, [1]) : undefined;
  const imgIds = g.input(STEP_IO.imgIds, io, ['N', 3]);
  const txtIds = g.input(STEP_IO.txtIds, io, ['L', 3]);
  const main = streamIn(STEP_IO, 1);
  const repaint = streamIn(STEP_IO.repaint, 'Fr');
  const keep = g.input(STEP_IO.repaint.keep, io, ['Nk']);
  const keepSingle = g.input(STEP_IO.repaint.keepSingle, io, ['Nk']);
  const srTxt = g.input(STEP_IO.srTxt, io, ['S', 'L', J]);
  const rpSrTxt = g.input(STEP_IO.repaint.srTxt, io, ['Sr', 'L', J]);
  const sr = {
    delta: g.input(STEP_IO.srDelta, io, [1]),
    source: g.input(STEP_IO.srSource, 'int64', ['S', 'Q']),
    place: g.input(STEP_IO.srPlace, 'int64', ['Ns']),
  };
  const regionalIn = {
    latents: g.input(STEP_IO.rgLatents, io, [1, 'T', C]),
    imgIds: g.input(STEP_IO.rgImgIds, io, ['T', 3]),
    offsets: g.input(STEP_IO.rgOffsets, 'int64', ['R1']),
    txt: g.input(STEP_IO.rgTxt, io, ['R', 'L', J]),
    pooled: g.input(STEP_IO.rgPooled, io, ['R', P]),
  };
  const paste = {
    rows: g.input(STEP_IO.pasteRows, 'int64', ['W']),
    from: g.input(STEP_IO.pasteFrom, 'int64', ['W']),
  };
  const lora = withLora ? declareLoraInputs(g, loraLayers(weights)) : undefined;
  // The timestep and guidance embedders of the regional streams take the global styles: the main pass's text row.
  const regional = {
    ...regionalIn,
    ...(lora ? { lora: { layers: lora.layers, ...lora.regional, global: lora.main.txt } } : {}),
  };
  return {
    timestep,
    ...(guidance ? { guidance } : {}),
    imgIds,
    txtIds,
    main: { ...main, srTxt },
    repaint: { ...repaint, srTxt: rpSrTxt, keep, keepSingle },
    sr,
    regional,
    paste,
    ...(lora ? { lora } : {}),
  };
}

export function buildStepGraph(cfg: FluxTransformerConfig, weights: NamedWeights, opts: StepGraphOptions = {}): Graph {
  const g = new Graph('flux-rag-step', {
    computeType: opts.computeType ?? 'float32',
    linear: opts.linear,
    doc: `FLUX.1 RAG step from ${weights.label}`,
  });
  const io = 'float32';
  const D = cfg.inner;
  const toC = (v: Value) => cast(v, g.computeType);
  const input = declareInputs(g, cfg, weights, opts.lora ?? true);

  // Which streams this step carries, read from its inputs' shapes.
  const nonEmpty = (x: Value) => greater(shapeOf(x, 0, 1), g.ints([0]));
  const has = {
    cells: nonEmpty(input.sr.source),
    regions: nonEmpty(input.regional.txt),
    paste: nonEmpty(input.paste.rows),
    repaint: nonEmpty(input.repaint.latents),
  };
  const dims: Dims = { textLength: shapeOf(input.txtIds, 0, 1) };

  const ctx = (rope: { cos: Value; sin: Value }, tables?: LoraTables): Ctx => ({
    g,
    cfg,
    attn: opts.attention ?? 'mha',
    w: (name) => g.weight(name, weights.source(name)),
    lw: (name) => g.linearWeight(name, weights.source(name)),
    rope,
    ...(tables && input.lora ? { lora: { layers: input.lora.layers, tables } } : {}),
  });
  const ropeOf = (imgIds: Value) =>
    ropeTables(concat([input.txtIds, imgIds], 0), cfg.axesDimsRope, cfg.ropeTheta, opts.ropePrecision);
  // Text first, as the model concatenates [txt_ids; img_ids]. RoPE stays float32 in 16-bit graphs (see rotate()).
  const fullRope = g.scope('rope', () => ropeOf(input.imgIds));
  // The main and the repaint pass: same RoPE, each with its own LoRA weights.
  const lora = input.lora;
  const fullCtx = ctx(fullRope, lora && fullTables(lora.main.img, lora.main.txt, dims.textLength));
  const rpCtx = ctx(fullRope, lora && fullTables(lora.repaint.img, lora.repaint.txt, dims.textLength));
  const rope = splitRope(fullCtx, dims.textLength);
  const sel: SrSelect = {
    on: has.cells,
    sources: input.sr.source,
    place: input.sr.place,
    delta: toC(input.sr.delta),
  };
  const nothing = (rank: number) =>
    empty(
      g,
      g.computeType,
      Array.from({ length: rank }, () => 0),
    );

  // --- open the streams: embedders and temb ---
  const open = (c: Ctx, s: StreamInputs, srTxt: Value): DoublePass => ({
    temb: g.scope('time_text_embed', () => timeTextEmbed(c, input.timestep, input.guidance, toC(s.pooled))),
    img: lin(c, 'x_embedder', toC(s.latents)),
    txt: lin(c, 'context_embedder', toC(s.txt)),
    // The SR text streams as [1, S·L, D], the form the per-token ops of the blocks take.
    srTxt: ifThen(
      has.cells,
      () => ({
        srTxt: g.scope('sr', () => reshapeTo(lin(c, 'context_embedder', toC(srTxt)), g.ints([1, -1, D]))),
      }),
      () => ({ srTxt: nothing(3) }),
    ).srTxt,
  });
  let main = g.scope('main', () => open(fullCtx, input.main, input.main.srTxt));
  let rp = ifThen(
    has.repaint,
    () => g.scope('rp', () => open(rpCtx, input.repaint, input.repaint.srTxt)),
    () => ({ temb: nothing(2), img: nothing(3), txt: nothing(3), srTxt: nothing(3) }),
  );
  const streams = openRegional(
    {
      g,
      cfg,
      ctx,
      ropeOf,
      toC,
      timestep: input.timestep,
      ...(input.guidance ? { guidance: input.guidance } : {}),
      textLength: dims.textLength,
      on: has.regions,
      regionalLoop: opts.regionalLoop,
      maxRegions: opts.maxRegions,
    },
    input.regional,
  );
  let regional = streams.opened;

  // --- the capture points ---
  /** Hard binding (§2.4b): writes the winning regional rows into the main pass's h [1, N', D] at row offset `shift`. */
  const paste = (h: Value, rows: Value, shift?: Value) =>
    ifThen(
      has.paste,
      () =>
        g.scope('hb_paste', () => {
          const at = unsqueeze(shift ? add(input.paste.rows, shift) : input.paste.rows, [1]);
          const flat = reshape(h, [-1, D]);
          const winners = gather(reshape(rows, [-1, D]), input.paste.from, 0);
          return { h: reshape(g.op('ScatterND', [flat, at, winners]), [1, -1, D]) };
        }),
      () => ({ h }),
    ).h;
  /** Repaint (§4.4): the repaint pass keeps its own rows where `keep` is 1 and takes the main pass's elsewhere. */
  const keepOwn = (keep: Value, own: Value, original: Value) =>
    where(reshape(cast(keep, 'bool'), [1, -1, 1]), own, original);

  /** The repaint pass's part of a block, run only when the step repaints (else its state passes through). */
  const whenRepainting = <T extends Record<string, Value>>(state: T, fn: () => T): T =>
    ifThen(
      has.repaint,
      () => g.scope('rp', fn),
      () => state,
    );

  // Capture point 0: after the embedders.
  main.img = paste(main.img, regional.img);
  rp.img = whenRepainting({ img: rp.img }, () => ({ img: keepOwn(input.repaint.keep, rp.img, main.img) })).img;

  // --- double blocks (§3.4): regional streams, the main pass (HB paste after each), the repaint pass ---
  for (let i = 0; i < cfg.numLayers; i++) {
    g.gateWeightsOn(main.img);
    regional = g.scope(`regional/transformer_blocks.${i}`, () =>
      streams.each(regional, (r) => doubleBlock(r.c, i, r.img, r.txt, r.temb)),
    );
    const m = fullDoubleBlock(fullCtx, i, main, { txt: main.srTxt }, sel, rope, dims);
    main = { ...main, img: paste(m.img, regional.img), txt: m.txt, srTxt: m.sr.txt };
    const before = rp;
    rp = {
      ...rp,
      ...whenRepainting({ img: rp.img, txt: rp.txt, srTxt: rp.srTxt }, () => {
        const o = fullDoubleBlock(rpCtx, i, before, { txt: before.srTxt }, sel, rope, dims);
        return { img: keepOwn(input.repaint.keep, o.img, main.img), txt: o.txt, srTxt: o.sr.txt };
      }),
    };
  }

  // --- single blocks (§3.5): x = [txt; img]; each pass's SR image stream starts from its (pasted / forced) rows ---
  let mainX: SinglePass = {
    temb: main.temb,
    x: concat([main.txt, main.img], 1),
    sr: { txt: main.srTxt, img: main.img },
  };
  let rpX: SinglePass = {
    temb: rp.temb,
    x: whenRepainting({ x: nothing(3) }, () => ({ x: concat([rp.txt, rp.img], 1) })).x,
    sr: { txt: rp.srTxt, img: rp.img },
  };
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    g.gateWeightsOn(mainX.x);
    regional = g.scope(`regional/single_transformer_blocks.${i}`, () =>
      streams.each(regional, (r) => {
        const y = splitText(r.c, singleBlock(r.c, i, concat([r.txt, r.img], 1), r.temb), dims.textLength);
        return { img: y.img, txt: y.txt };
      }),
    );
    const m = fullSingleBlock(fullCtx, i, mainX.x, mainX.temb, mainX.sr, sel, rope, dims);
    // Only the main pass's image rows are pasted; its SR streams keep their own (RAG-SPEC §3.5).
    const pasted = paste(m.x, regional.img, dims.textLength);
    mainX = { ...mainX, x: pasted, sr: m.sr };
    const before = rpX;
    const next = whenRepainting({ x: rpX.x, srTxt: rpX.sr.txt, srImg: rpX.sr.img }, () => {
      const o = fullSingleBlock(rpCtx, i, before.x, before.temb, before.sr, sel, rope, dims);
      // Repainting_single: the image rows outside the mask are the main pass's (keep_single is all 1 without it).
      const parts = splitText(fullCtx, o.x, dims.textLength);
      const img = keepOwn(input.repaint.keepSingle, parts.img, splitText(fullCtx, pasted, dims.textLength).img);
      return { x: concat([parts.txt, img], 1), srTxt: o.sr.txt, srImg: o.sr.img };
    });
    rpX = { ...rpX, x: next.x, sr: { txt: next.srTxt, img: next.srImg } };
  }

  // --- norm_out (the last capture point), then proj_out per stream ---
  g.gateWeightsOn(mainX.x);
  const rgNormed = g.scope('regional/norm_out', () =>
    streams.each(regional, (r) => ({ img: normOut(r.c, r.img, r.temb) })),
  ).img;
  const mainNormed = paste(normOut(fullCtx, splitText(fullCtx, mainX.x, dims.textLength).img, main.temb), rgNormed);
  g.output(cast(lin(fullCtx, 'proj_out', mainNormed), io), STEP_IO.velocity, io, [1, 'N', cfg.outChannels]);
  const rpVelocity = whenRepainting({ v: input.repaint.latents }, () => {
    const own = normOut(rpCtx, splitText(rpCtx, rpX.x, dims.textLength).img, rpX.temb);
    return { v: cast(lin(rpCtx, 'proj_out', keepOwn(input.repaint.keep, own, mainNormed)), io) };
  }).v;
  g.output(rpVelocity, STEP_IO.repaint.velocity, io, ['Fr', 'N', cfg.outChannels]);
  const rgVelocity = ifThen(
    has.regions,
    () => ({ v: cast(lin(streams.all, 'proj_out', rgNormed), io) }),
    () => ({ v: input.regional.latents }),
  ).v;
  g.output(rgVelocity, STEP_IO.rgVelocity, io, [1, 'T', cfg.outChannels]);
  return g;
}
