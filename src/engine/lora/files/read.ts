import { existsSync } from 'node:fs';
import { SafetensorsFile, WeightsError } from '../../weights/safetensors.ts';
import { loraMeta } from '../meta.ts';
import type { LoraFile, LoraLayer } from '../types.ts';
import { buildLayers } from './build.ts';
import { classify, lycorisKey, refuseForeign } from './detect.ts';
import { LoraFileError } from './errors.ts';
import { peftAlpha } from './peft-config.ts';
import { planModules, type HeaderTensor, type LoraTarget } from './plan.ts';
import { hashAndRead, type WantedTensor } from './tensors.ts';

/**
 * Reads a LoRA file in any of the layouts people have (diffusers/PEFT, kohya, BFL/ComfyUI, XLabs) and maps it onto
 * the engine's layer names for one transformer. Everything that can be judged from the header (layout, foreign
 * models, shapes, ranks) is judged before a tensor byte is read; then one pass hashes the file and reads the factors.
 */

export { LoraFileError } from './errors.ts';
export type { LoraTarget } from './plan.ts';

const sample = (xs: readonly string[], n = 3) =>
  xs.slice(0, n).join(', ') + (xs.length > n ? ` and ${xs.length - n} more` : '');

function openHeader(path: string): SafetensorsFile {
  if (!existsSync(path)) throw new LoraFileError(`LoRA file ${path} does not exist; check the path (or LORA_DIR)`);
  try {
    return new SafetensorsFile(path, path);
  } catch (e) {
    if (e instanceof WeightsError)
      throw new LoraFileError(
        `cannot read LoRA ${e.message}${/again/.test(e.message) ? '' : '; download or copy the LoRA again'}`,
      );
    throw e;
  }
}

/**
 * Layers with the same rank and input and equal down values get one down array: diffusers files store a fused
 * qkv's shared A once per projection, and one array both saves the memory and lets a graph compute A·x once.
 */
function shareEqualDowns(layers: Map<string, LoraLayer>): void {
  const seen = new Map<string, Float32Array[]>();
  for (const layer of layers.values()) {
    const key = `${layer.rank}x${layer.inFeatures}`;
    const group = seen.get(key) ?? [];
    const same = group.find(
      (d) => d === layer.down || (d.length === layer.down.length && d.every((v, i) => v === layer.down[i])),
    );
    if (same) layer.down = same;
    else seen.set(key, [...group, layer.down]);
  }
}

export async function readLoraFile(path: string, target: LoraTarget): Promise<LoraFile> {
  const st = openHeader(path);
  const keys = st.names();
  const header = (key: string): HeaderTensor => st.info(key);
  refuseForeign(path, keys, { shape: (k) => st.info(k).shape, metadata: st.metadata });
  const { layout, parsed, textEncoder, unrecognised } = classify(keys);
  const { modules, absent } = planModules(path, parsed, header, target);
  if (modules.length === 0) {
    const lycoris = lycorisKey(keys);
    const what = lycoris
      ? `it is a LyCORIS (LoHa/LoKr/OFT) file (${lycoris}), which scenewright does not apply`
      : textEncoder.length === keys.length && keys.length > 0
        ? 'it adapts only the text encoder'
        : absent.length > 0
          ? `its layers (${sample(absent)}) are not layers of ${target.label}`
          : 'none of its keys are FLUX transformer LoRA keys';
    throw new LoraFileError(
      `${path}: no layer of this LoRA maps onto ${target.label}: ${what}. Keys: ${sample(keys, 5) || '(none)'}`,
    );
  }

  const warnings: string[] = [];
  if (textEncoder.length > 0)
    warnings.push(
      `${path}: skipped ${textEncoder.length} text-encoder tensors (${sample(textEncoder, 2)}); scenewright applies LoRAs to the transformer only`,
    );
  if (absent.length > 0 || unrecognised.length > 0) {
    const parts = [
      absent.length > 0
        ? `${absent.length} modules for layers ${target.label} does not have or adapt (${sample(absent, 2)})`
        : '',
      unrecognised.length > 0 ? `${unrecognised.length} unrecognised tensors (${sample(unrecognised, 2)})` : '',
    ].filter(Boolean);
    warnings.push(
      `${path}: only part of this LoRA applies: ${modules.length} modules used, skipped ${parts.join(' and ')}`,
    );
  }

  const wanted: WantedTensor[] = modules.flatMap((m) =>
    [m.down, m.up, ...(m.alpha ? [m.alpha] : [])].map((key) => {
      const t = st.info(key);
      return { key, dtype: t.dtype, start: st.dataStart + t.begin, end: st.dataStart + t.end };
    }),
  );
  const { sha256, tensors } = await hashAndRead(path, wanted);
  const layers = new Map<string, LoraLayer>();
  const configAlpha = layout.format === 'diffusers' ? peftAlpha(st.metadata) : undefined;
  for (const m of modules) {
    const alpha = m.alpha ? tensors.get(m.alpha)![0] : configAlpha?.(m.module, m.rank);
    for (const [name, layer] of buildLayers(path, m, tensors.get(m.down)!, tensors.get(m.up)!, alpha)) {
      if (layers.has(name)) {
        warnings.push(`${path}: ${m.module} adapts ${name} a second time; the first is used`);
        continue;
      }
      layers.set(name, layer);
    }
    tensors.delete(m.down);
    tensors.delete(m.up);
  }
  shareEqualDowns(layers);
  return { path, sha256, format: layout.format, layers, meta: loraMeta(st.metadata), warnings };
}
