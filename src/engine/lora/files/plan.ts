import { LORA_LIMITS } from '../../../rag/params.ts';
import type { DType } from '../../onnx/graph.ts';
import { LoraFileError } from './errors.ts';
import type { ParsedKey } from './layout.ts';
import type { ModuleTargets } from './names.ts';
import { FLOAT_DTYPES } from './tensors.ts';

/**
 * From a file's header alone (before any tensor byte is read): which down/up/alpha keys make which engine layers,
 * with every shape checked against the model, so a wrong file is refused without reading it.
 */

/** What the reader is mapping onto: the transformer's linears by engine (diffusers) name. */
export interface LoraTarget {
  /** How messages name the model, e.g. "FLUX.1-dev (models/flux1-dev)". */
  label: string;
  /** [out, in] of an engine linear layer, or undefined if the model has no such layer. */
  layerShape(name: string): readonly [out: number, inp: number] | undefined;
}

export interface HeaderTensor {
  dtype: DType;
  shape: readonly number[];
}

/** One engine layer fed by a module: its block of the module's up rows. */
export interface PartPlan {
  layer: string;
  rowStart: number;
  rows: number;
}

/** One down/up pair of the file and where it goes. */
export interface ModulePlan {
  module: string;
  down: string;
  up: string;
  alpha?: string;
  rank: number;
  inFeatures: number;
  parts: PartPlan[];
  swapHalves: boolean;
}

export interface Plan {
  modules: ModulePlan[];
  /** Modules of the layout that name no linear of this model (another depth, or a layer we do not adapt). */
  absent: string[];
}

/** Sizes of full-size FLUX.1's linears (3072 wide, MLP 12288, fused qkv / linear1 / modulation rows). */
const FLUX1_SIZES = new Set([3072, 6144, 9216, 12288, 15360, 18432, 21504]);
const anotherWidth = (lora: number) =>
  `the LoRA was made for a model of another width${FLUX1_SIZES.has(lora) ? " (its sizes are full-size FLUX.1's, hidden size 3072)" : ''}`;

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function groupByModule(parsed: Map<string, ParsedKey>) {
  const groups = new Map<
    string,
    { targets: ModuleTargets | undefined; keys: Partial<Record<ParsedKey['role'], string>> }
  >();
  for (const [key, p] of parsed) {
    let g = groups.get(p.module);
    if (!g) groups.set(p.module, (g = { targets: p.targets, keys: {} }));
    g.keys[p.role] = key;
  }
  return groups;
}

/** Checks every pair against the model and lays out its parts; throws LoraFileError on the first bad one. */
export function planModules(
  file: string,
  parsed: Map<string, ParsedKey>,
  header: (key: string) => HeaderTensor,
  target: LoraTarget,
): Plan {
  const modules: ModulePlan[] = [];
  const absent: string[] = [];
  for (const [module, { targets, keys }] of groupByModule(parsed)) {
    if (!keys.down || !keys.up) {
      const [has, lacks] = keys.down
        ? [keys.down, 'up (B)']
        : keys.up
          ? [keys.up, 'down (A)']
          : [keys.alpha!, 'down and up'];
      throw new LoraFileError(
        `${file}: ${has} has no matching ${lacks} factor (module ${module}); the file is incomplete or damaged`,
      );
    }
    const shapes = targets?.layers.map((l) => target.layerShape(l));
    if (!targets || !shapes || shapes.some((s) => s === undefined)) {
      absent.push(module);
      continue;
    }
    const down = header(keys.down);
    const up = header(keys.up);
    for (const [key, t] of [
      [keys.down, down],
      [keys.up, up],
    ] as const) {
      if (!FLOAT_DTYPES.has(t.dtype))
        throw new LoraFileError(
          `${file}: tensor ${key} is ${t.dtype}; LoRA factors must be float32, float16, bfloat16 or float8`,
        );
      if (t.shape.length !== 2)
        throw new LoraFileError(
          `${file}: tensor ${key} has shape ${fmt(t.shape)}, not a linear layer's 2-D factor (a convolution LoRA for another model?)`,
        );
    }
    const [rank, inFeatures] = down.shape as [number, number];
    const [outRows, upRank] = up.shape as [number, number];
    if (rank !== upRank)
      throw new LoraFileError(
        `${file}: ${keys.down} has shape ${fmt(down.shape)} and ${keys.up} has shape ${fmt(up.shape)}: their ranks (${rank} and ${upRank}) differ; the file is damaged`,
      );
    if (rank === 0) throw new LoraFileError(`${file}: ${keys.down} has rank 0; the file is damaged`);
    const outs = shapes.map((s) => s![0]);
    const want: [number, number] = [outs.reduce((a, b) => a + b, 0), shapes[0]![1]];
    if (inFeatures !== want[1] || shapes.some((s) => s![1] !== want[1])) {
      // img_in's width is the latent channels: FLUX.1 Fill / Canny / Depth take extra conditioning channels.
      const why =
        targets.layers[0] === 'x_embedder'
          ? `the LoRA was made for a FLUX variant with ${inFeatures} input channels (Fill, Canny or Depth?), not this model's ${want[1]}`
          : anotherWidth(inFeatures);
      throw new LoraFileError(
        `${file}: tensor ${keys.down} has shape ${fmt(down.shape)} but ${targets.layers.join(' + ')} of ${target.label} takes ${want[1]} inputs (expected [${rank}, ${want[1]}]); ${why}`,
      );
    }
    if (outRows !== want[0])
      throw new LoraFileError(
        `${file}: tensor ${keys.up} has shape ${fmt(up.shape)} but ${targets.layers.join(' + ')} of ${target.label} has ${want[0]} outputs (expected [${want[0]}, ${rank}]); ${anotherWidth(outRows)}`,
      );
    // A fused module saved split (kohya split_qkv) is rank n·r with a block-diagonal up; it is checked on the values.
    const n = targets.layers.length;
    const mayShrink = n > 1 && rank % n === 0 && rank / n <= LORA_LIMITS.maxRank;
    if (rank > LORA_LIMITS.maxRank && !mayShrink) throw rankError(file, keys.down, rank);
    if (keys.alpha) {
      const a = header(keys.alpha);
      if (!FLOAT_DTYPES.has(a.dtype) || a.shape.reduce((x, y) => x * y, 1) !== 1)
        throw new LoraFileError(
          `${file}: ${keys.alpha} should be one float (the alpha), but is ${a.dtype} ${fmt(a.shape)}`,
        );
    }
    let row = 0;
    const parts = targets.layers.map((layer, i) => {
      const p = { layer, rowStart: row, rows: outs[i]! };
      row += outs[i]!;
      return p;
    });
    modules.push({
      module,
      down: keys.down,
      up: keys.up,
      ...(keys.alpha ? { alpha: keys.alpha } : {}),
      rank,
      inFeatures,
      parts,
      swapHalves: targets.swapHalves === true,
    });
  }
  return { modules, absent };
}

export function rankError(file: string, key: string, rank: number): LoraFileError {
  return new LoraFileError(
    `${file}: ${key} has rank ${rank}, above the limit of ${LORA_LIMITS.maxRank}; use a LoRA of rank ${LORA_LIMITS.maxRank} or less (resize it with a LoRA resizing tool)`,
  );
}
