/**
 * Every graph the engine creates, for every provider form and weight form, built (not run) on tiny checkpoints:
 * CLIP, T5 (512 tokens), the step graph (one graph for every layout, with its If/Loop bodies) and the VAE decoder and
 * encoder, with the options the engine passes them (Engine → StepRunner, Conditioning → the text encoders, VaeCodec).
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadCheckpoint } from '../../src/engine/checkpoint/index.ts';
import { buildClipTextGraph } from '../../src/engine/graphs/clip.ts';
import { buildT5EncoderGraph, t5ComputeType } from '../../src/engine/graphs/t5.ts';
import { buildVaeDecoderGraph, buildVaeEncoderGraph } from '../../src/engine/graphs/vae.ts';
import type { Graph } from '../../src/engine/onnx/graph.ts';
import { formsFor, PreparedCheckpoint } from '../../src/engine/pipeline/weight-forms.ts';
import { graphFormFor, type ExecutionProvider } from '../../src/engine/runtime/session.ts';
import { buildStepGraph } from '../../src/engine/step/step-graph.ts';
import { writeWeightsForm, type TinyForm } from '../../src/engine/tiny-model/forms.ts';
import { makeTinyModel } from '../../src/engine/tiny-model/make.ts';
import { PREPARED_FOLDER } from '../../src/engine/weights/forms.ts';

export const PROVIDERS: ExecutionProvider[] = ['cpu', 'cuda', 'webgpu'];
export const WEIGHT_FORMS: TinyForm[] = [
  'bf16',
  'int8',
  'int4',
  'fp8',
  'gguf-q4_0',
  'gguf-q8_0',
  'gguf-q4_1',
  'gguf-q5_1',
];

export interface BuiltGraph {
  provider: ExecutionProvider;
  weights: TinyForm;
  part: 'clip' | 't5' | 'step' | 'vae-decoder' | 'vae-encoder';
  graph: Graph;
}

/** Writes one tiny checkpoint per weight form under `root` (once), and returns its folder. */
export function tinyForm(root: string, form: TinyForm): string {
  const dir = path.join(root, form);
  if (!fs.existsSync(path.join(dir, 'model_index.json'))) {
    makeTinyModel({ out: dir, preset: 'tiny', variant: 'dev', seed: 3, force: true });
    writeWeightsForm(dir, form);
  }
  return dir;
}

/** The engine's graphs for one weight form, in each provider's form. */
export function engineGraphs(root: string, form: TinyForm, providers = PROVIDERS): BuiltGraph[] {
  const dir = tinyForm(root, form);
  const raw = loadCheckpoint(dir);
  const ck = new PreparedCheckpoint(raw, formsFor(dir, undefined).forms, path.join(root, 'cache'), [
    path.join(dir, PREPARED_FOLDER),
  ]);
  const out: BuiltGraph[] = [];
  for (const provider of providers) {
    const f = graphFormFor(provider);
    const add = (part: BuiltGraph['part'], graph: Graph) => out.push({ provider, weights: form, part, graph });
    add('clip', buildClipTextGraph(ck.component('text_encoder'), { linear: f.linear }));
    add(
      't5',
      buildT5EncoderGraph(ck.component('text_encoder_2'), {
        computeType: t5ComputeType(provider),
        linear: f.linear,
        length: 512,
      }),
    );
    add('step', buildStepGraph(ck.transformerConfig, ck.transformerWeights(), { ...f, computeType: f.computeType }));
    add('vae-decoder', buildVaeDecoderGraph(ck.component('vae'), { linear: f.linear }));
    add('vae-encoder', buildVaeEncoderGraph(ck.component('vae'), { linear: f.linear }));
  }
  return out;
}
