/**
 * RAG's additions to the FLUX blocks, composed from the block pieces of graphs/transformer.ts (same weights,
 * same arithmetic): soft refinement inside the double and single blocks (RAG-SPEC.md §3.4, §3.5) using the exact
 * equivalences of §3.7, and the row operations of hard binding (§2.4) and repainting (§4.4).
 *
 * The "full" streams are the main pass and, when repainting, the repaint pass: every image token with the global
 * ids. Soft refinement sits inside an If, so a step without cells computes exactly the plain block.
 *
 * Soft refinement, as computed here:
 * - Double blocks: the image Q/K/V are computed once and shared by every cell; only the S text streams of each
 *   full stream have their own Q/K/V. Cell j's attention takes as queries its text tokens plus only the image
 *   tokens its crop uses, against keys/values [text_j ; all image tokens]. All cells attend in one batch: the crop
 *   queries are padded to the largest crop (a padded query changes no other row and is never read back). The
 *   crops are put in place (one Gather) to form the composite before to_out, which is per-token linear, so
 *   cropping before or after it is the same. The blend is A + δ·(C − A) (A the plain output, C the composite):
 *   δ = 0 gives A exactly, and a 16-bit δ cannot bias it as δ·C + (1 − δ)·A does (bf16(0.1) + bf16(0.9) ≠ 1).
 * - Single blocks: the S cells of a full stream share one SR image stream (every cell gets the same composite,
 *   and the rest of the block is per token), so the graph carries that stream plus the S SR text streams.
 * Cost per block: attention (S·L + N)(L + N) instead of upstream's S·(L + N)², and no recomputed image Q/K/V.
 */
import type { Value } from '../onnx/graph.ts';
import { attention, clampHalf, geluTanh, layerNorm, modulate } from '../onnx/nn.ts';
import { ifElse } from '../onnx/control.ts';
import {
  add,
  cast,
  concat,
  expand,
  gather,
  mul,
  reshape,
  reshapeTo,
  shapeOf,
  sliceDynamic,
  split,
  sub,
  unsqueeze,
} from '../onnx/ops.ts';
import { EPS, headsNormed, lin, modulation, type Ctx } from '../graphs/transformer.ts';
import type { LoraTokens } from '../lora/graph.ts';

const END = Number.MAX_SAFE_INTEGER;

/**
 * RoPE tables of a whole [txt; img] sequence and of its text rows and image rows, each [S, 1, headDim]. The sin
 * tables carry rot()'s sign (−sin on even lanes, see rotate()).
 */
export interface SplitRope {
  cos: Value;
  sin: Value;
  txtCos: Value;
  txtSin: Value;
  imgCos: Value;
  imgSin: Value;
}

/** The soft-refinement selectors of a step (graph inputs, shared by the main and the repaint pass). */
export interface SrSelect {
  /** bool [1]: the step has cells (S > 0). */
  on: Value;
  /** int64 [S, Q]: per cell, the image tokens whose queries its crop needs (composite order), padded to Q. */
  sources: Value;
  /** int64 [N]: composite token t → its row in the cells' query rows flattened to [S·Q]. */
  place: Value;
  /** δ as a [1] value in the compute type. */
  delta: Value;
}

/** Run-time sizes the reshapes between [1, S·L, D] and [S, L, D] need. */
export interface Dims {
  /** int64 [1]. */
  textLength: Value;
}

/** The SR streams of a full pass in the double blocks: the cells' texts e_j as [1, S·L, D] (RAG-SPEC §3.4). */
export interface SrTexts {
  txt: Value;
}

/** In the single blocks each SR stream s_j = [e_j; h_j] also carries its own image rows [1, N, D] (RAG-SPEC §3.5). */
export interface SrStreams extends SrTexts {
  img: Value;
}

export function splitRope(c: Ctx, textLength: Value): SplitRope {
  const end = c.g.ints([END]);
  const zero = c.g.ints([0]);
  const signs = c.g.constant(
    Array.from({ length: c.cfg.headDim }, (_, d) => (d % 2 ? 1 : -1)),
    [c.cfg.headDim],
    'float32',
  );
  const sin = mul(c.rope.sin, cast(signs, c.rope.sin.dtype ?? 'float32'));
  return {
    cos: c.rope.cos,
    sin,
    txtCos: sliceDynamic(c.rope.cos, zero, textLength, 0),
    txtSin: sliceDynamic(sin, zero, textLength, 0),
    imgCos: sliceDynamic(c.rope.cos, textLength, end, 0),
    imgSin: sliceDynamic(sin, textLength, end, 0),
  };
}

/**
 * RoPE on [B, S, H, Dh] heads, repacked to [B, S, D]: x·cos + swap(x)·sin± with swap exchanging the lanes of each
 * pair (Split + Concat) and sin± the signed table of SplitRope, in the tables' precision (float32 in 16-bit graphs:
 * the rotation of large positions loses the low bits of the angle in bf16). Bit for bit nn.ts ropeInterleaved in
 * float32 (−a·b and a·(−b) round alike), without its Neg. (A Gather of the pair lanes is the same arithmetic but
 * measured 107 ms of a 2.0 s plain step on the bench preset, against 7 ms for Split.)
 */
export function rotate(c: Ctx, x: Value, cos: Value, signedSin: Value): Value {
  const Dh = c.cfg.headDim;
  const xt = cast(x, cos.dtype ?? c.g.computeType);
  const [even, odd] = split(reshape(xt, [0, 0, 0, Dh / 2, 2]), [1, 1], 4) as [Value, Value];
  const swapped = reshape(concat([odd, even], 4), [0, 0, 0, Dh]);
  return reshape(cast(add(mul(xt, cos), mul(swapped, signedSin)), c.g.computeType), [0, 0, c.cfg.inner]);
}

function attend(c: Ctx, q: Value, k: Value, v: Value): Value {
  return attention(q, k, v, { heads: c.cfg.heads, headDim: c.cfg.headDim, impl: c.attn });
}

/** Text rows [0, L) and image rows [L, end) of a [B, L + N, D] sequence. */
export function splitText(c: Ctx, x: Value, textLength: Value): { txt: Value; img: Value } {
  return { txt: sliceDynamic(x, c.g.ints([0]), textLength, 1), img: sliceDynamic(x, textLength, c.g.ints([END]), 1) };
}

/** A + δ·(C − A): the SR blend of composite C into the plain output A. */
function blend(sel: SrSelect, composite: Value, plain: Value): Value {
  return add(plain, mul(sel.delta, sub(composite, plain)));
}

/** [1, S·L, D] ↔ [S, L, ...]: per-token ops run on the first form, the cells' attention on the second. */
function perCell(c: Ctx, d: Dims, x: Value, tail: number[]): Value {
  return reshapeTo(x, concat([c.g.ints([-1]), d.textLength, c.g.ints(tail)], 0));
}
function perStream(c: Ctx, x: Value): Value {
  return reshape(x, [1, -1, c.cfg.inner]);
}

/**
 * The cell attentions of one block, all cells in one batch. Text streams arrive as
 * [S, L, D] (rotated; values as they are), the image streams as [1, N, D]. Returns the text outputs [S, L, D]
 * and the composite [1, N, D] whose token t is cell κ(t)'s output at its source token.
 */
function cellAttention(
  c: Ctx,
  sel: SrSelect,
  d: Dims,
  qT: Value,
  kT: Value,
  vT: Value,
  qI: Value,
  kI: Value,
  vI: Value,
): { text: Value; composite: Value } {
  const D = c.cfg.inner;
  const cells = shapeOf(sel.sources, 0, 1);
  const queries = shapeOf(sel.sources, 1, 2);
  // [1, N, D] → [S, N, D]: every cell of a stream attends to all of that stream's image keys.
  const perCellKv = (x: Value) =>
    reshapeTo(
      expand(unsqueeze(x, [1]), concat([c.g.ints([1]), cells, c.g.ints([1, 1])], 0)),
      concat([c.g.ints([-1]), shapeOf(x, 1, 2), c.g.ints([D])], 0),
    );
  const cropQ = reshapeTo(gather(qI, sel.sources, 1), concat([c.g.ints([-1]), queries, c.g.ints([D])], 0));
  const o = attend(c, concat([qT, cropQ], 1), concat([kT, perCellKv(kI)], 1), concat([vT, perCellKv(vI)], 1));
  const parts = splitText(c, o, d.textLength);
  return { text: parts.txt, composite: gather(perStream(c, parts.img), sel.place, 1) };
}

function ff(c: Ctx, prefix: string, x: Value): Value {
  return lin(c, `${prefix}.net.2`, geluTanh(lin(c, `${prefix}.net.0.proj`, x)));
}

/** Per-head RMS-normed, rotated Q or K of SR text tokens [1, S·L, D] → [S, L, D]. */
function cellHeads(c: Ctx, d: Dims, proj: string, norm: string, x: Value, cos: Value, sin: Value): Value {
  return rotate(c, perCell(c, d, headsNormed(c, proj, norm, x), [c.cfg.heads, c.cfg.headDim]), cos, sin);
}

/**
 * A double-stream block over the full streams (img [1, N, D], txt [1, L, D], temb [1, D]) with soft refinement
 * when the step has cells. Same weights and modulation (each stream's temb) for a stream and its SR streams.
 */
export function fullDoubleBlock(
  c: Ctx,
  i: number,
  s: { img: Value; txt: Value; temb: Value },
  sr: SrTexts,
  sel: SrSelect,
  rope: SplitRope,
  d: Dims,
): { img: Value; txt: Value; sr: SrTexts } {
  const p = `transformer_blocks.${i}`;
  return c.g.scope(p, () => {
    const D = c.cfg.inner;
    const [sh1, sc1, g1, sh2, sc2, g2] = modulation(c, `${p}.norm1.linear`, s.temb, 6) as [
      Value,
      Value,
      Value,
      Value,
      Value,
      Value,
    ];
    const [csh1, csc1, cg1, csh2, csc2, cg2] = modulation(c, `${p}.norm1_context.linear`, s.temb, 6) as [
      Value,
      Value,
      Value,
      Value,
      Value,
      Value,
    ];
    const hn = modulate(layerNorm(s.img, D, EPS), sc1, sh1);
    const en = modulate(layerNorm(s.txt, D, EPS), csc1, csh1);

    const qi = rotate(c, headsNormed(c, `${p}.attn.to_q`, `${p}.attn.norm_q`, hn), rope.imgCos, rope.imgSin);
    const ki = rotate(c, headsNormed(c, `${p}.attn.to_k`, `${p}.attn.norm_k`, hn), rope.imgCos, rope.imgSin);
    const vi = lin(c, `${p}.attn.to_v`, hn);
    const qt = rotate(
      c,
      headsNormed(c, `${p}.attn.add_q_proj`, `${p}.attn.norm_added_q`, en),
      rope.txtCos,
      rope.txtSin,
    );
    const kt = rotate(
      c,
      headsNormed(c, `${p}.attn.add_k_proj`, `${p}.attn.norm_added_k`, en),
      rope.txtCos,
      rope.txtSin,
    );
    const vt = lin(c, `${p}.attn.add_v_proj`, en);

    const o = attend(c, concat([qt, qi], 1), concat([kt, ki], 1), concat([vt, vi], 1));
    const { txt: ot, img: oi } = splitText(c, o, d.textLength);
    const toOut = (x: Value) => lin(c, `${p}.attn.to_out.0`, x);
    const context = (stream: Value, attnOut: Value) => {
      const e = add(stream, mul(cg1, lin(c, `${p}.attn.to_add_out`, attnOut)));
      return clampHalf(add(e, mul(cg2, ff(c, `${p}.ff_context`, modulate(layerNorm(e, D, EPS), csc2, csh2)))));
    };

    const plain = toOut(oi);
    const [imgAttn, srTxt] = ifElse(
      sel.on,
      () =>
        c.g.scope('sr', () => {
          const sn = modulate(layerNorm(sr.txt, D, EPS), csc1, csh1);
          const cells = cellAttention(
            c,
            sel,
            d,
            cellHeads(c, d, `${p}.attn.add_q_proj`, `${p}.attn.norm_added_q`, sn, rope.txtCos, rope.txtSin),
            cellHeads(c, d, `${p}.attn.add_k_proj`, `${p}.attn.norm_added_k`, sn, rope.txtCos, rope.txtSin),
            perCell(c, d, lin(c, `${p}.attn.add_v_proj`, sn), [D]),
            qi,
            ki,
            vi,
          );
          return [blend(sel, toOut(cells.composite), plain), context(sr.txt, perStream(c, cells.text))];
        }),
      () => [plain, sr.txt],
    ) as [Value, Value];

    let h = add(s.img, mul(g1, imgAttn));
    h = add(h, mul(g2, ff(c, `${p}.ff`, modulate(layerNorm(h, D, EPS), sc2, sh2))));
    return { img: h, txt: context(s.txt, ot), sr: { txt: srTxt } };
  });
}

/**
 * A single-stream block over the full streams' x = [txt; img] [1, L + N, D], with soft refinement when the
 * step has cells: the SR image stream sr.img [1, N, D] and text streams sr.txt [1, S·L, D].
 */
export function fullSingleBlock(
  c: Ctx,
  i: number,
  x: Value,
  temb: Value,
  sr: SrStreams,
  sel: SrSelect,
  rope: SplitRope,
  d: Dims,
): { x: Value; sr: SrStreams } {
  const p = `single_transformer_blocks.${i}`;
  return c.g.scope(p, () => {
    const D = c.cfg.inner;
    const [sh, sc, gate] = modulation(c, `${p}.norm.linear`, temb, 3) as [Value, Value, Value];
    // Which LoRA weight table each stream's rows take: [txt; img], the SR image stream, the SR text streams.
    const pre = (stream: Value, t: LoraTokens) => {
      const n = modulate(layerNorm(stream, D, EPS), sc, sh);
      return { n, t, mlp: geluTanh(lin(c, `${p}.proj_mlp`, n, t)), v: lin(c, `${p}.attn.to_v`, n, t) };
    };
    const heads = (s: { n: Value; t: LoraTokens }, which: 'q' | 'k') =>
      headsNormed(c, `${p}.attn.to_${which}`, `${p}.attn.norm_${which}`, s.n, s.t);
    const out = (stream: Value, attn: Value, mlp: Value, t: LoraTokens) =>
      clampHalf(add(stream, mul(gate, lin(c, `${p}.proj_out`, concat([attn, mlp], 2), t))));

    const gl = pre(x, 'joint');
    const a0 = attend(
      c,
      rotate(c, heads(gl, 'q'), rope.cos, rope.sin),
      rotate(c, heads(gl, 'k'), rope.cos, rope.sin),
      gl.v,
    );
    const parts = splitText(c, a0, d.textLength);

    const [imgAttn, srImg, srTxt] = ifElse(
      sel.on,
      () =>
        c.g.scope('sr', () => {
          const im = pre(sr.img, 'img');
          const tx = pre(sr.txt, 'txt');
          const cells = cellAttention(
            c,
            sel,
            d,
            rotate(c, perCell(c, d, heads(tx, 'q'), [c.cfg.heads, c.cfg.headDim]), rope.txtCos, rope.txtSin),
            rotate(c, perCell(c, d, heads(tx, 'k'), [c.cfg.heads, c.cfg.headDim]), rope.txtCos, rope.txtSin),
            perCell(c, d, tx.v, [D]),
            rotate(c, heads(im, 'q'), rope.imgCos, rope.imgSin),
            rotate(c, heads(im, 'k'), rope.imgCos, rope.imgSin),
            im.v,
          );
          return [
            blend(sel, cells.composite, parts.img),
            out(sr.img, cells.composite, im.mlp, 'img'),
            out(sr.txt, perStream(c, cells.text), tx.mlp, 'txt'),
          ];
        }),
      () => [parts.img, sr.img, sr.txt],
    ) as [Value, Value, Value];

    return { x: out(x, concat([parts.txt, imgAttn], 1), gl.mlp, 'joint'), sr: { txt: srTxt, img: srImg } };
  });
}

/** norm_out (AdaLayerNormContinuous: scale, shift in this order) of an image stream; proj_out is separate. */
export function normOut(c: Ctx, img: Value, temb: Value): Value {
  return c.g.scope('norm_out', () => {
    const [scale, shift] = modulation(c, 'norm_out.linear', temb, 2) as [Value, Value];
    return modulate(layerNorm(img, c.cfg.inner, EPS), scale, shift);
  });
}
