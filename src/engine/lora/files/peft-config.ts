/**
 * diffusers/PEFT files keep alpha out of the tensors: `save_lora_weights` writes the adapter's LoraConfig as JSON
 * in the `lora_adapter_metadata` metadata key, unprefixed from a model (`{"r": 16, "lora_alpha": 32}`) or
 * prefixed by component from a pipeline (`{"transformer.r": 16, "transformer.lora_alpha": 32}`), with optional
 * per-module `alpha_pattern` and `use_rslora` (scale alpha / √r instead of alpha / r).
 */

interface PeftConfig {
  loraAlpha?: number;
  alphaPattern: [RegExp, number][];
  rsLora: boolean;
}

function parse(raw: string | undefined): PeftConfig | undefined {
  if (!raw) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!json || typeof json !== 'object') return undefined;
  const o = json as Record<string, unknown>;
  const get = (k: string) => o[`transformer.${k}`] ?? o[k];
  const alpha = get('lora_alpha');
  const pattern = get('alpha_pattern');
  const alphaPattern: [RegExp, number][] = [];
  if (pattern && typeof pattern === 'object') {
    for (const [p, v] of Object.entries(pattern as Record<string, unknown>)) {
      if (typeof v !== 'number') continue;
      try {
        // PEFT matches a pattern against the end of the module name, at a dot boundary.
        alphaPattern.push([new RegExp(`(^|\\.)(${p})$`), v]);
      } catch {
        continue;
      }
    }
  }
  return {
    ...(typeof alpha === 'number' && alpha > 0 ? { loraAlpha: alpha } : {}),
    alphaPattern,
    rsLora: get('use_rslora') === true,
  };
}

/**
 * The alpha of `module` (the file's module name) as the adapter config gives it, converted so that alpha / rank is
 * PEFT's scale (rsLoRA included); undefined when the file has no such config.
 */
export function peftAlpha(
  metadata: Record<string, string>,
): ((module: string, rank: number) => number | undefined) | undefined {
  const cfg = parse(metadata['lora_adapter_metadata']);
  if (!cfg || (cfg.loraAlpha === undefined && cfg.alphaPattern.length === 0)) return undefined;
  return (module, rank) => {
    const name = module.replace(/^(transformer\.|base_model\.model\.)/, '');
    const alpha = cfg.alphaPattern.find(([re]) => re.test(name))?.[1] ?? cfg.loraAlpha;
    if (alpha === undefined) return undefined;
    return cfg.rsLora ? alpha * Math.sqrt(rank) : alpha;
  };
}
