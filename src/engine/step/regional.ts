/**
 * The regional streams of a step (RAG-SPEC.md §2.3; the repaint pre-pass of §4.4 is one more after the boxes):
 * each a plain FLUX generation on its own image rows, with its own prompts, temb and local RoPE ids. They run
 * block by block in lock-step with the full passes (§2.5), one Loop iteration per stream, so only the current
 * block's regional rows are alive.
 */
import type { FluxTransformerConfig } from '../checkpoint/flux-config.ts';
import { lin, timeTextEmbed, type Ctx } from '../graphs/transformer.ts';
import type { Graph, Value } from '../onnx/graph.ts';
import { add, concat, empty, gather, greater, shapeOf, sliceDynamic, unsqueeze } from '../onnx/ops.ts';
import { streamTables, type LoraInputs, type LoraTables } from '../lora/graph.ts';
import { ifThen, loop } from './named-control.ts';

const END = Number.MAX_SAFE_INTEGER;

/** Regional streams an unrolled graph (regionalLoop 'unrolled') can carry: 8 boxes and the repaint pre-pass. */
export const DEFAULT_UNROLLED_REGIONS = 9;

/** The regional graph inputs: image rows of all streams [1, T, C], their local ids, row offsets [R + 1], texts. */
export interface RegionalInputs {
  latents: Value;
  imgIds: Value;
  offsets: Value;
  txt: Value;
  pooled: Value;
  /** Each stream's LoRA weights: one row per stream [R, nL], and per image row [T, nL]. */
  lora?: Pick<LoraInputs, 'layers'> & LoraInputs['regional'] & { global: Value };
}

/** All regional streams between blocks: every stream's image rows [1, T, D] and texts [R, L, D]. */
export type RegionalState = { img: Value; txt: Value };

/** One stream's part of a block: its rows, its text and temb, and a block context with its local RoPE. */
export type RegionBody = (r: { c: Ctx; img: Value; txt: Value; temb: Value }) => { img: Value; txt?: Value };

export interface RegionalSetup {
  g: Graph;
  cfg: FluxTransformerConfig;
  /** A block context (weights, attention kernel) over the given RoPE tables and LoRA weight tables. */
  ctx(rope: { cos: Value; sin: Value }, lora?: LoraTables): Ctx;
  /** RoPE tables of [txt_ids; imgIds]. */
  ropeOf(imgIds: Value): { cos: Value; sin: Value };
  toC(v: Value): Value;
  timestep: Value;
  guidance?: Value;
  /** int64 [1]: L. */
  textLength: Value;
  /** bool [1]: the step carries regional streams. */
  on: Value;
  /** A Loop (default), or an If per possible stream for providers without Loop (WebGPU). */
  regionalLoop?: 'loop' | 'unrolled';
  maxRegions?: number;
}

export interface Regional {
  /** The streams after their embedders (capture point 0). */
  opened: RegionalState;
  /** Every stream through `body`, each on its own rows. */
  each(state: RegionalState, body: RegionBody): RegionalState;
  /** A context for per-token linears over all streams' rows at once ([1, T, D]: proj_out), each row its stream's LoRAs. */
  all: Ctx;
}

/** Embeds the regional streams and returns how to run a block over each of them. */
export function openRegional(s: RegionalSetup, input: RegionalInputs): Regional {
  const { g } = s;
  const nothing = (rank: number) =>
    empty(
      g,
      g.computeType,
      Array.from({ length: rank }, () => 0),
    );
  const rg = ifThen(
    s.on,
    () =>
      g.scope('regional', () => {
        const tables = s.ropeOf(input.imgIds);
        // The embedders run on every stream at once: image rows [1, T, ·], texts [R, L, ·], pooled [R, ·].
        const l = input.lora;
        const rc = s.ctx(tables, l && { img: l.img, txt: unsqueeze(l.rows, [1]), joint: () => l.img });
        const tc = s.ctx(tables, l && { ...streamTables(l.rows), shared: l.global });
        const split = (t: Value) => ({
          txt: sliceDynamic(t, g.ints([0]), s.textLength, 0),
          img: sliceDynamic(t, s.textLength, g.ints([END]), 0),
        });
        const cos = split(tables.cos);
        const sin = split(tables.sin);
        return {
          img: lin(rc, 'x_embedder', s.toC(input.latents)),
          txt: lin(rc, 'context_embedder', s.toC(input.txt)),
          temb: g.scope('time_text_embed', () => timeTextEmbed(tc, s.timestep, s.guidance, s.toC(input.pooled))),
          // RoPE of the shared text rows [L, 1, Dh] and of every regional image row [T, 1, Dh].
          txtCos: cos.txt,
          txtSin: sin.txt,
          imgCos: cos.img,
          imgSin: sin.img,
        };
      }),
    () => {
      const table = empty(g, 'float32', [0, 1, s.cfg.headDim]);
      return {
        img: nothing(3),
        txt: nothing(3),
        temb: nothing(2),
        txtCos: table,
        txtSin: table,
        imgCos: table,
        imgSin: table,
      };
    },
  );

  const trips = add(shapeOf(input.offsets), g.ints([-1]));
  /** One regional stream k ([1] int64) through `body`: its rows sliced out of the state and written back. */
  const region = (k: Value, state: RegionalState, body: RegionBody): RegionalState => {
    const a = gather(input.offsets, k, 0);
    const b = gather(input.offsets, add(k, g.ints([1])), 0);
    const k1 = add(k, g.ints([1]));
    const c = s.ctx(
      {
        cos: concat([rg.txtCos, sliceDynamic(rg.imgCos, a, b, 0)], 0),
        sin: concat([rg.txtSin, sliceDynamic(rg.imgSin, a, b, 0)], 0),
      },
      input.lora && streamTables(sliceDynamic(input.lora.rows, k, k1, 0)),
    );
    const out = body({
      c,
      img: sliceDynamic(state.img, a, b, 1),
      txt: sliceDynamic(state.txt, k, k1, 0),
      temb: sliceDynamic(rg.temb, k, k1, 0),
    });
    const put = (all: Value, lo: Value, hi: Value, part: Value, axis: number) =>
      concat([sliceDynamic(all, g.ints([0]), lo, axis), part, sliceDynamic(all, hi, g.ints([END]), axis)], axis);
    return { img: put(state.img, a, b, out.img, 1), txt: out.txt ? put(state.txt, k, k1, out.txt, 0) : state.txt };
  };
  const l = input.lora;
  const allRows = l && { img: l.img, txt: l.img, joint: () => l.img };
  return {
    opened: { img: rg.img, txt: rg.txt },
    all: s.ctx({ cos: rg.txtCos, sin: rg.txtSin }, allRows),
    each: (state, body) =>
      s.regionalLoop === 'unrolled'
        ? Array.from({ length: s.maxRegions ?? DEFAULT_UNROLLED_REGIONS }).reduce<RegionalState>(
            (st, _, r) =>
              ifThen(
                greater(trips, g.ints([r])),
                () => region(g.ints([r]), st, body),
                () => st,
              ),
            state,
          )
        : loop(trips, state, (k, st) => region(k, st, body)),
  };
}
