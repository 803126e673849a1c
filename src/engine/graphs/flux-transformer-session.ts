import { UserError } from '../../config/errors.ts';
import type { FluxCheckpoint } from '../checkpoint/types.ts';
import { createSession, ort, type RuntimeOptions } from '../runtime/session.ts';
import { buildTransformerGraph, TRANSFORMER_OUTPUT, type TransformerGraphOptions } from './transformer.ts';

/** Inputs of one transformer call, batch first, float32 (see transformer.ts for shapes). */
export interface TransformerInputs {
  hidden_states: Float32Array;
  encoder_hidden_states: Float32Array;
  pooled_projections: Float32Array;
  /** σ per batch item (the model multiplies by 1000). */
  timestep: Float32Array;
  /** guidance scale per batch item; dev only, ignored (and not fed) for schnell. */
  guidance?: Float32Array;
  img_ids: Float32Array;
  txt_ids: Float32Array;
}

/** A ready transformer session: one run() per denoising step. */
export interface TransformerSession {
  readonly createMs: number;
  readonly nodeCount: number;
  /** Returns the velocity prediction [B, N, outChannels] (plus dbg_* outputs when built with intermediates). */
  run(x: TransformerInputs): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

/** Builds the graph for the checkpoint's transformer and opens an ORT session on it. */
export async function openTransformer(
  ck: FluxCheckpoint,
  runtime: RuntimeOptions,
  opts: TransformerGraphOptions = {},
): Promise<TransformerSession> {
  const cfg = ck.transformerConfig;
  const graph = buildTransformerGraph(cfg, ck.transformerWeights(), opts);
  const { session, createMs } = await createSession(graph, runtime);
  return {
    createMs,
    nodeCount: graph.nodeCount,
    async run(x) {
      const N = x.img_ids.length / 3;
      const L = x.txt_ids.length / 3;
      const B = x.timestep.length;
      const expect = (name: string, got: number, want: number, shape: string) => {
        if (got !== want)
          throw new UserError(`transformer input ${name} has ${got} values, expected ${want} for shape ${shape}`);
      };
      expect(
        'hidden_states',
        x.hidden_states.length,
        B * N * cfg.inChannels,
        `[${B},${N},${cfg.inChannels}] (N from img_ids)`,
      );
      expect(
        'encoder_hidden_states',
        x.encoder_hidden_states.length,
        B * L * cfg.jointAttentionDim,
        `[${B},${L},${cfg.jointAttentionDim}] (L from txt_ids)`,
      );
      expect(
        'pooled_projections',
        x.pooled_projections.length,
        B * cfg.pooledProjectionDim,
        `[${B},${cfg.pooledProjectionDim}]`,
      );
      if (!Number.isInteger(N) || !Number.isInteger(L)) throw new UserError('img_ids and txt_ids must have 3 columns');
      const t = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);
      const feeds: Record<string, ort.Tensor> = {
        hidden_states: t(x.hidden_states, [B, N, cfg.inChannels]),
        encoder_hidden_states: t(x.encoder_hidden_states, [B, L, cfg.jointAttentionDim]),
        pooled_projections: t(x.pooled_projections, [B, cfg.pooledProjectionDim]),
        timestep: t(x.timestep, [B]),
        img_ids: t(x.img_ids, [N, 3]),
        txt_ids: t(x.txt_ids, [L, 3]),
      };
      if (cfg.guidanceEmbeds) {
        if (!x.guidance)
          throw new UserError('this is a FLUX.1-dev style transformer (guidance_embeds): a guidance value is required');
        expect('guidance', x.guidance.length, B, `[${B}]`);
        feeds.guidance = t(x.guidance, [B]);
      }
      return session.run(feeds);
    },
    release: () => session.release(),
  };
}

export { TRANSFORMER_OUTPUT };
