/**
 * LoRA test helpers (random factors come from src/engine/tiny-model/lora.ts randomLoraFile): a loader
 * that serves them for placeholder paths, and a checkpoint with a LoRA merged into its transformer weights.
 */
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readSafetensors, toFloat32, writeSafetensors, type HostTensor } from '../../src/engine/weights/safetensors.ts';
import type { LoraFile } from '../../src/engine/lora/types.ts';
import { blockFor, dequantizeNBits, quantizeNBits } from '../../src/engine/weights/nbits.ts';
import type { LoraLoader } from '../../src/engine/lora/library.ts';

/** Placeholder files on disk for `files` (the library stats them) and a loader serving the LoraFile objects. */
export function loraShelf(files: LoraFile[]): { dir: string; paths: string[]; loader: LoraLoader; reads: string[] } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sw-lora-'));
  const byPath = new Map<string, LoraFile>();
  const paths = files.map((f, i) => {
    const p = path.join(dir, `style-${i}.safetensors`);
    writeFileSync(p, `placeholder ${i}`);
    byPath.set(p, { ...f, path: p });
    return p;
  });
  const reads: string[] = [];
  const loader: LoraLoader = (p) => {
    reads.push(p);
    const f = byPath.get(p);
    return f ? Promise.resolve(f) : Promise.reject(new Error(`no test LoRA at ${p}`));
  };
  return { dir, paths, loader, reads };
}

/**
 * A copy of checkpoint `src` whose transformer weights are float32 with W + Σ s·(alpha/rank)·B·A merged in
 * (float32 arithmetic, the other weights widened exactly), written with the repo's safetensors writer. With
 * `quantize`, W is first what the engine's int8/int4 form holds (quantized, then dequantized).
 */
export function mergedCheckpoint(
  src: string,
  loras: { file: LoraFile; scale: number }[],
  o: { quantize?: 4 | 8 } = {},
): string {
  const out = mkdtempSync(path.join(tmpdir(), 'sw-merged-'));
  cpSync(src, out, { recursive: true });
  const file = path.join(out, 'transformer', 'diffusion_pytorch_model.safetensors');
  const { tensors, metadata } = readSafetensors(path.join(src, 'transformer', 'diffusion_pytorch_model.safetensors'));
  const merged: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    let w: Float32Array = toFloat32(t).slice();
    const layer = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : undefined;
    // The base weights as an int8/int4 engine holds them (weights/prepare.ts quantizes every linear with a block).
    const block = t.shape.length === 2 ? blockFor(t.shape[1]!) : undefined;
    if (o.quantize && layer && block)
      w = dequantizeNBits(quantizeNBits(w, t.shape[0]!, t.shape[1]!, o.quantize, block));
    for (const { file: f, scale } of loras) {
      const l = layer && f.layers.get(layer);
      if (!l) continue;
      const s = Math.fround(scale * l.alphaScale);
      const K = l.inFeatures;
      for (let o = 0; o < l.outFeatures; o++)
        for (let k = 0; k < K; k++) {
          let acc = 0;
          for (let r = 0; r < l.rank; r++) acc += l.up[o * l.rank + r]! * l.down[r * K + k]!;
          w[o * K + k] = Math.fround(w[o * K + k]! + Math.fround(s * Math.fround(acc)));
        }
    }
    merged[name] = { dtype: 'float32', shape: t.shape, data: w };
  }
  writeSafetensors(file, merged, metadata);
  return out;
}

export { maxAbsDiff } from '../support/weights.ts';
