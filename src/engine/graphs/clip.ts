import { UserError } from '../../config/errors.ts';
import {
  add,
  attention,
  cast,
  gelu,
  Graph,
  layerNorm,
  linear,
  mul,
  mulScalar,
  sigmoid,
  type Value,
} from '../onnx/index.ts';
import { configReader, type ComponentInput, type TextGraphOptions } from './clip-config.ts';

/**
 * transformers `CLIPTextModel` (FLUX's text_encoder, CLIP ViT-L/14's text tower) as an ONNX graph:
 * token + position embeddings, pre-LN layers with causal self-attention and a quick-GELU MLP, the final
 * LayerNorm, and the pooled output. FLUX calls it without an attention mask, so padding is handled only
 * by the causal mask.
 *
 * Pooling: transformers picks `last_hidden_state[b, argmax(input_ids[b])]` when the config's
 * eos_token_id is 2 (true of FLUX's config: a legacy value) and otherwise the first position holding
 * eos_token_id. With CLIP's vocabulary both give the first <|endoftext|> (49407, the largest id).
 *
 * Inputs: input_ids int64 [B, 77]. Outputs: last_hidden_state [B, 77, H], pooler_output [B, H] (float32).
 */
export interface ClipTextConfig {
  hidden: number;
  heads: number;
  layers: number;
  positions: number;
  eps: number;
  act: 'quick_gelu' | 'gelu';
  eosTokenId: number;
}

export function clipTextConfig(c: ComponentInput): ClipTextConfig {
  const r = configReader(c.config, c.configFile);
  const act = r.str('hidden_act', 'quick_gelu');
  if (act !== 'quick_gelu' && act !== 'gelu')
    throw new UserError(`${c.configFile}: hidden_act "${act}" is not supported (CLIP uses quick_gelu)`);
  const cfg: ClipTextConfig = {
    hidden: r.int('hidden_size'),
    heads: r.int('num_attention_heads'),
    layers: r.int('num_hidden_layers'),
    positions: r.int('max_position_embeddings', 77),
    eps: r.num('layer_norm_eps', 1e-5),
    act,
    eosTokenId: r.num('eos_token_id', 2),
  };
  if (cfg.hidden % cfg.heads !== 0)
    throw new UserError(
      `${c.configFile}: hidden_size ${cfg.hidden} is not divisible by num_attention_heads ${cfg.heads}`,
    );
  return cfg;
}

function activation(x: Value, act: ClipTextConfig['act']): Value {
  // quick_gelu(x) = x · σ(1.702 x)
  return act === 'quick_gelu' ? mul(x, sigmoid(mulScalar(x, 1.702))) : gelu(x);
}

export function buildClipTextGraph(c: ComponentInput, opts: TextGraphOptions = {}): Graph {
  const cfg = clipTextConfig(c);
  const g = new Graph('clip_text', {
    computeType: opts.computeType ?? 'float32',
    linear: opts.linear,
    doc: `CLIPTextModel from ${c.configFile}`,
  });
  const W = (name: string): Value => g.weight(name, c.weights.source(name));
  const L = cfg.positions;
  const H = cfg.hidden;
  const headDim = H / cfg.heads;

  const ids = g.input('input_ids', 'int64', ['B', L]);
  let h = g.scope('embeddings', () =>
    add(
      g.embedding(
        'text_model.embeddings.token_embedding.weight',
        c.weights.source('text_model.embeddings.token_embedding.weight'),
        ids,
      ),
      W('text_model.embeddings.position_embedding.weight'),
    ),
  );
  const hiddenOut = (v: Value, i: number) => {
    if (opts.hiddenStates) g.output(cast(v, 'float32'), `hidden_states_${i}`, 'float32', ['B', L, H]);
  };
  hiddenOut(h, 0);

  // Causal mask: position q may attend to k ≤ q. transformers adds finfo(float32).min above the diagonal.
  const mask = new Float32Array(L * L);
  for (let q = 0; q < L; q++) for (let k = q + 1; k < L; k++) mask[q * L + k] = -3.4028234663852886e38;
  const bias = cast(g.constant(mask, [1, 1, L, L], 'float32'), g.computeType);

  for (let i = 0; i < cfg.layers; i++) {
    const p = `text_model.encoder.layers.${i}`;
    h = g.scope(`layers.${i}`, () => {
      const lin = (name: string, x: Value) =>
        linear(
          x,
          g.linearWeight(`${p}.${name}.weight`, c.weights.source(`${p}.${name}.weight`)),
          W(`${p}.${name}.bias`),
        );
      const x1 = layerNorm(h, H, cfg.eps, W(`${p}.layer_norm1.weight`), W(`${p}.layer_norm1.bias`));
      const attn = attention(lin('self_attn.q_proj', x1), lin('self_attn.k_proj', x1), lin('self_attn.v_proj', x1), {
        heads: cfg.heads,
        headDim,
        bias,
        impl: opts.attention ?? 'mha',
      });
      const r1 = add(h, lin('self_attn.out_proj', attn));
      const x2 = layerNorm(r1, H, cfg.eps, W(`${p}.layer_norm2.weight`), W(`${p}.layer_norm2.bias`));
      return add(r1, lin('mlp.fc2', activation(lin('mlp.fc1', x2), cfg.act)));
    });
    hiddenOut(h, i + 1);
  }
  const last = layerNorm(h, H, cfg.eps, W('text_model.final_layer_norm.weight'), W('text_model.final_layer_norm.bias'));
  g.output(cast(last, 'float32'), 'last_hidden_state', 'float32', ['B', L, H]);

  // Pooling index per batch row, via ArgMax over float ids (exact below 2^24; ArgMax keeps the first max).
  const key =
    cfg.eosTokenId === 2
      ? cast(ids, 'float32')
      : cast(g.op('Equal', [ids, g.constant([cfg.eosTokenId], [], 'int64')], {}, { dtype: 'bool' }), 'float32');
  const index = g.op('ArgMax', [key], { axis: 1, keepdims: 1 }, { dtype: 'int64' });
  const pooled = g.op('GatherND', [last, index], { batch_dims: 1 });
  g.output(cast(pooled, 'float32'), 'pooler_output', 'float32', ['B', H]);
  return g;
}
