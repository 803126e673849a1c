/**
 * What a LoRA file's safetensors metadata says about it. Trainers write it in two vocabularies: kohya's sd-scripts
 * (`ss_tag_frequency`: {dataset: {tag: count}}, `ss_base_model_version`, `ss_output_name`) and the Stability
 * model spec (`modelspec.title`, `.architecture`, `.trigger_phrase`, `.description`). Values are JSON strings that
 * may be missing or malformed; a bad value is skipped, never an error.
 */
import type { LoraMeta } from './types.ts';

/** At most this many trigger words are shown (tag lists of trained LoRAs run to hundreds). */
const MAX_TRIGGER_WORDS = 8;

function tagFrequency(raw: string | undefined): string[] {
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return [];
  }
  if (!parsed || typeof parsed !== 'object') return [];
  const counts = new Map<string, number>();
  for (const dataset of Object.values(parsed as Record<string, unknown>)) {
    if (!dataset || typeof dataset !== 'object') continue;
    for (const [tag, n] of Object.entries(dataset as Record<string, unknown>)) {
      const word = tag.trim();
      if (word && typeof n === 'number' && Number.isFinite(n)) counts.set(word, (counts.get(word) ?? 0) + n);
    }
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([tag]) => tag)
    .slice(0, MAX_TRIGGER_WORDS);
}

function phrases(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .slice(0, MAX_TRIGGER_WORDS);
}

function text(raw: string | undefined): string | undefined {
  const t = raw?.trim();
  return t ? t : undefined;
}

export function loraMeta(metadata: Record<string, string>): LoraMeta {
  const trigger = phrases(metadata['modelspec.trigger_phrase']);
  const baseModel = text(metadata['ss_base_model_version']) ?? text(metadata['modelspec.architecture']);
  const title = text(metadata['modelspec.title']) ?? text(metadata['ss_output_name']);
  const description = text(metadata['modelspec.description']);
  return {
    triggerWords: trigger.length > 0 ? trigger : tagFrequency(metadata['ss_tag_frequency']),
    ...(baseModel ? { baseModel } : {}),
    ...(title ? { title } : {}),
    ...(description ? { description } : {}),
  };
}
