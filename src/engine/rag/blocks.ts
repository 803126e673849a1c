/**
 * RAG's additions to the FLUX blocks, composed from the block pieces of graphs/transformer.ts (same weights,
 * same arithmetic): soft refinement inside the double and single blocks (RAG-SPEC.md §3.4, §3.5) using the exact
 * equivalences of §3.7, and the row operations of hard binding (§2.4) and repainting (§4.4).
 *
 * Soft refinement, as computed here:
 * - Double blocks: the image Q/K/V are computed once and shared by every stream; only the S text streams have
 *   their own Q/K/V. Cell j's attention takes as queries its text tokens plus only the image tokens its crop
 *   uses, against keys/values [text_j ; all image tokens]. The crops are put in place (one Gather over the
 *   concatenated per-cell outputs) to form the composite before to_out, which is per-token linear, so cropping
 *   before or after it is the same. The blend is δ·to_out(C) + (1−δ)·to_out(O), in upstream's operand order.
 * - Single blocks: the S SR streams share one image stream (every stream gets the same composite, and the rest
 *   of the block is per token), so the graph carries the global stream, one SR image stream and S SR text
 *   streams; cell j again attends only with its own text and its crop's image queries.
 * Cost per block: attention (S·L + N)(L + N) instead of upstream's S·(L + N)², and no recomputed image Q/K/V.
 */
import type { Value } from '../onnx/graph.ts';
import { attention, geluTanh, layerNorm, modulate } from '../onnx/nn.ts';
import { add, cast, concat, gather, mul, reshape, slice, sliceDynamic, unsqueeze, where } from '../onnx/ops.ts';
import { EPS, headsNormed, lin, modulation, type Ctx } from '../graphs/transformer.ts';

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
  /** Per cell j: int64 [N_j], the image tokens whose queries cell j's crop needs (composite order). */
  sources: Value[];
  /** int64 [N]: composite token t → its row in the concatenation of the cells' outputs. */
  place: Value;
  /** δ and 1 − δ as [1] values in the compute type. */
  delta: Value;
  oneMinusDelta: Value;
}

export function splitRope(c: Ctx, textLength: Value): SplitRope {
  const end = c.g.ints([END]);
  const zero = c.g.ints([0]);
  const signs = cast(c.g.constant(Array.from({ length: c.cfg.headDim }, (_, d) => (d % 2 ? 1 : -1)), [c.cfg.headDim], 'float32'), c.rope.sin.dtype ?? c.g.computeType);
  const sin = mul(c.rope.sin, signs);
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
 * pair and sin± the signed table of SplitRope. Bit for bit nn.ts ropeInterleaved (−a·b and a·(−b) round alike), in
 * one Gather and three element-wise passes instead of two Slices, Neg and Concat before them: these run over the S
 * text streams, the biggest tensors of an SR step.
 */
function rotate(c: Ctx, x: Value, cos: Value, signedSin: Value): Value {
  const Dh = c.cfg.headDim;
  const swapped = reshape(gather(reshape(x, [0, 0, 0, Dh / 2, 2]), c.g.ints([1, 0]), 4), [0, 0, 0, Dh]);
  return reshape(add(mul(x, cos), mul(swapped, signedSin)), [0, 0, c.cfg.inner]);
}

function attend(c: Ctx, q: Value, k: Value, v: Value): Value {
  return attention(q, k, v, { heads: c.cfg.heads, headDim: c.cfg.headDim, impl: c.attn });
}

/** Text rows [0, L) and image rows [L, end) of a [B, L + N, D] sequence. */
export function splitText(c: Ctx, x: Value, textLength: Value): { txt: Value; img: Value } {
  return { txt: sliceDynamic(x, c.g.ints([0]), textLength, 1), img: sliceDynamic(x, textLength, c.g.ints([END]), 1) };
}

/** δ·composite + (1−δ)·plain, as upstream writes it (`output_x * SR_delta + x * (1 - SR_delta)`). */
function blend(sel: SrSelect, composite: Value, plain: Value): Value {
  return add(mul(composite, sel.delta), mul(plain, sel.oneMinusDelta));
}

/**
 * The S cell attentions of one block. Text streams arrive batched [S, L, D] (already rotated; values as they
 * are), the shared image stream as [1, N, D]. Returns each stream's text output [S, L, D] and the composite
 * [1, N, D] whose token t is cell κ(t)'s output at its source token.
 */
function cellAttention(
  c: Ctx, sel: SrSelect, textLength: Value,
  qT: Value, kT: Value, vT: Value, qI: Value, kI: Value, vI: Value,
): { text: Value; composite: Value } {
  const texts: Value[] = [];
  const crops: Value[] = [];
  sel.sources.forEach((src, j) => {
    const one = (x: Value) => slice(x, [j], [j + 1], [0]);
    const q = concat([one(qT), gather(qI, src, 1)], 1);
    const o = attend(c, q, concat([one(kT), kI], 1), concat([one(vT), vI], 1));
    const parts = splitText(c, o, textLength);
    texts.push(parts.txt);
    crops.push(parts.img);
  });
  return { text: concat(texts, 0), composite: gather(concat(crops, 1), sel.place, 1) };
}

function ff(c: Ctx, prefix: string, x: Value): Value {
  return lin(c, `${prefix}.net.2`, geluTanh(lin(c, `${prefix}.net.0.proj`, x)));
}

/**
 * A double-stream block with soft refinement: image stream `img` [1, N, D], global text `txt` [1, L, D],
 * SR text streams `srTxt` [S, L, D]. Same weights and modulation (the global temb) for every stream.
 */
export function doubleBlockSr(
  c: Ctx, i: number, img: Value, txt: Value, srTxt: Value, temb: Value, sel: SrSelect, rope: SplitRope, textLength: Value,
): { img: Value; txt: Value; srTxt: Value } {
  const p = `transformer_blocks.${i}`;
  return c.g.scope(`${p}/sr`, () => {
    const D = c.cfg.inner;
    const [sh1, sc1, g1, sh2, sc2, g2] = modulation(c, `${p}.norm1.linear`, temb, 6) as [Value, Value, Value, Value, Value, Value];
    const [csh1, csc1, cg1, csh2, csc2, cg2] = modulation(c, `${p}.norm1_context.linear`, temb, 6) as [Value, Value, Value, Value, Value, Value];
    const hn = modulate(layerNorm(img, D, EPS), sc1, sh1);
    const en = modulate(layerNorm(txt, D, EPS), csc1, csh1);
    const sn = modulate(layerNorm(srTxt, D, EPS), csc1, csh1);

    const qi = rotate(c, headsNormed(c, `${p}.attn.to_q`, `${p}.attn.norm_q`, hn), rope.imgCos, rope.imgSin);
    const ki = rotate(c, headsNormed(c, `${p}.attn.to_k`, `${p}.attn.norm_k`, hn), rope.imgCos, rope.imgSin);
    const vi = lin(c, `${p}.attn.to_v`, hn);
    const text = (x: Value) => ({
      q: rotate(c, headsNormed(c, `${p}.attn.add_q_proj`, `${p}.attn.norm_added_q`, x), rope.txtCos, rope.txtSin),
      k: rotate(c, headsNormed(c, `${p}.attn.add_k_proj`, `${p}.attn.norm_added_k`, x), rope.txtCos, rope.txtSin),
      v: lin(c, `${p}.attn.add_v_proj`, x),
    });
    const t = text(en);
    const s = text(sn);

    const o = attend(c, concat([t.q, qi], 1), concat([t.k, ki], 1), concat([t.v, vi], 1));
    const { txt: ot, img: oi } = splitText(c, o, textLength);
    const cells = cellAttention(c, sel, textLength, s.q, s.k, s.v, qi, ki, vi);

    const toOut = (x: Value) => lin(c, `${p}.attn.to_out.0`, x);
    let h = add(img, mul(g1, blend(sel, toOut(cells.composite), toOut(oi))));
    h = add(h, mul(g2, ff(c, `${p}.ff`, modulate(layerNorm(h, D, EPS), sc2, sh2))));
    const context = (stream: Value, attnOut: Value) => {
      const e = add(stream, mul(cg1, lin(c, `${p}.attn.to_add_out`, attnOut)));
      return add(e, mul(cg2, ff(c, `${p}.ff_context`, modulate(layerNorm(e, D, EPS), csc2, csh2))));
    };
    return { img: h, txt: context(txt, ot), srTxt: context(srTxt, cells.text) };
  });
}

/**
 * A single-stream block with soft refinement: global x = [txt; img] [1, L + N, D], the SR image stream
 * `srImg` [1, N, D] shared by all cells, the SR text streams `srTxt` [S, L, D].
 */
export function singleBlockSr(
  c: Ctx, i: number, x: Value, srImg: Value, srTxt: Value, temb: Value, sel: SrSelect, rope: SplitRope, textLength: Value,
): { x: Value; srImg: Value; srTxt: Value } {
  const p = `single_transformer_blocks.${i}`;
  return c.g.scope(`${p}/sr`, () => {
    const D = c.cfg.inner;
    const [sh, sc, gate] = modulation(c, `${p}.norm.linear`, temb, 3) as [Value, Value, Value];
    const pre = (stream: Value) => {
      const n = modulate(layerNorm(stream, D, EPS), sc, sh);
      return { n, mlp: geluTanh(lin(c, `${p}.proj_mlp`, n)), v: lin(c, `${p}.attn.to_v`, n) };
    };
    const qk = (n: Value, cos: Value, sin: Value) => ({
      q: rotate(c, headsNormed(c, `${p}.attn.to_q`, `${p}.attn.norm_q`, n), cos, sin),
      k: rotate(c, headsNormed(c, `${p}.attn.to_k`, `${p}.attn.norm_k`, n), cos, sin),
    });
    const out = (stream: Value, attn: Value, mlp: Value) => add(stream, mul(gate, lin(c, `${p}.proj_out`, concat([attn, mlp], 2))));

    const gl = pre(x);
    const glQk = qk(gl.n, rope.cos, rope.sin);
    const a0 = attend(c, glQk.q, glQk.k, gl.v);
    const im = pre(srImg);
    const imQk = qk(im.n, rope.imgCos, rope.imgSin);
    const tx = pre(srTxt);
    const txQk = qk(tx.n, rope.txtCos, rope.txtSin);
    const cells = cellAttention(c, sel, textLength, txQk.q, txQk.k, tx.v, imQk.q, imQk.k, im.v);

    const parts = splitText(c, a0, textLength);
    const mixed = concat([parts.txt, blend(sel, cells.composite, parts.img)], 1);
    return { x: out(x, mixed, gl.mlp), srImg: out(srImg, cells.composite, im.mlp), srTxt: out(srTxt, cells.text, tx.mlp) };
  });
}

/** norm_out (AdaLayerNormContinuous: scale, shift in this order) of an image stream; proj_out is separate. */
export function normOut(c: Ctx, img: Value, temb: Value): Value {
  return c.g.scope('norm_out', () => {
    const [scale, shift] = modulation(c, 'norm_out.linear', temb, 2) as [Value, Value];
    return modulate(layerNorm(img, c.cfg.inner, EPS), scale, shift);
  });
}

/** Overwrites rows of h [1, N, D] at `index` ([M, 1] int64) with `rows` [1, M, D] (hard binding's paste). */
export function scatterRows(c: Ctx, h: Value, index: Value, rows: Value): Value {
  const D = c.cfg.inner;
  const out = c.g.op('ScatterND', [reshape(h, [-1, D]), index, reshape(rows, [-1, D])]);
  return reshape(out, [1, -1, D]);
}

/** Token indices [M] (int64) as ScatterND wants them, [M, 1], optionally shifted by the text length. */
export function scatterIndex(index: Value, offset?: Value): Value {
  return unsqueeze(offset ? add(index, offset) : index, [1]);
}

/** Repaint's capture-point rule: repaint rows where `inside` ([1, N, 1] bool) holds, the original's elsewhere. */
export function keepInside(inside: Value, repaint: Value, original: Value): Value {
  return where(inside, repaint, original);
}

/** The repaint mask input [N] (1 = repaint) as a broadcastable bool [1, N, 1]. */
export function maskCondition(mask: Value): Value {
  return reshape(cast(mask, 'bool'), [1, -1, 1]);
}
