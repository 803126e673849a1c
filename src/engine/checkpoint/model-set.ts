import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { childLogger } from '../../log/logger.ts';
import type { TensorSource } from '../onnx/graph.ts';
import { openSafetensorsWeights, type NamedWeights } from '../weights/named-weights.ts';
import { bflConfig, mapBflTransformer, MappedWeights } from './bfl.ts';
import { bflVaeConfig, mapBflVae } from './bfl-vae.ts';
import { checkShapes, type ShapeSpec } from './check.ts';
import { autoencoderKLShapes, clipTextShapes, t5EncoderShapes } from './component-specs.ts';
import { checkDeclared, checkPipeline, readJson } from './diffusers.ts';
import { CheckpointError } from './errors.ts';
import { openTensorFile, storageSummary, WEIGHT_FILE } from './files.ts';
import { fluxConfigFromDiffusers, fluxTransformerShapes, type FluxTransformerConfig } from './flux-config.ts';
import { partsOf, ROLE_NAMES, type Part, type Role } from './parts.ts';
import { clipConfigFromShapes, clipWeights, t5ConfigFromShapes, t5Weights } from './text-encoders.ts';
import type { AssetFolder, Component, ComponentForm, ComponentName, FluxCheckpoint, Json } from './types.ts';

/**
 * A model set: the folder MODEL_DIR names, holding FLUX.1's parts in whatever forms the user has. One rule,
 * per part (transformer, text_encoder, text_encoder_2, vae):
 *
 *   1. if the folder has a `<part>/` subfolder (the diffusers layout), the part is in there: diffusers' own
 *      weights file(s), else the one weights file (.safetensors / .sft / .gguf) it holds; a config.json beside
 *      them must agree with the tensors;
 *   2. otherwise it is the one weights file directly in the folder whose tensors are that part (recognised by
 *      tensor names, not file names; a ComfyUI all-in-one checkpoint holds several parts).
 *
 * Two candidates for one part are an error naming both. Tokenizers come from `tokenizer/` and `tokenizer_2/`, the
 * scheduler from `scheduler/` (else FLUX.1's published values for the variant). model_index.json, when present,
 * is checked as diffusers would.
 */

const log = childLogger('checkpoint');

/** Per component: the class we run, the diffusers weights stem, the shape spec from a config. */
const COMPONENTS: Record<
  ComponentName,
  { className: string; stem: string; spec: (cfg: Json, file: string) => ShapeSpec }
> = {
  text_encoder: { className: 'CLIPTextModel', stem: 'model', spec: clipTextShapes },
  text_encoder_2: { className: 'T5EncoderModel', stem: 'model', spec: t5EncoderShapes },
  vae: { className: 'AutoencoderKL', stem: 'diffusion_pytorch_model', spec: autoencoderKLShapes },
};
const STEMS: Record<Role, string> = {
  transformer: 'diffusion_pytorch_model',
  ...Object.fromEntries(Object.entries(COMPONENTS).map(([k, v]) => [k, v.stem])),
} as Record<Role, string>;

/** FLUX.1's scheduler_config.json (the same in both repositories except the shift). */
function fluxScheduler(variant: 'dev' | 'schnell'): Json {
  return {
    _class_name: 'FlowMatchEulerDiscreteScheduler',
    num_train_timesteps: 1000,
    base_image_seq_len: 256,
    max_image_seq_len: 4096,
    base_shift: 0.5,
    max_shift: 1.15,
    shift: variant === 'dev' ? 3.0 : 1.0,
    use_dynamic_shifting: variant === 'dev',
  };
}

/** Where one part's weights are. */
type Located =
  { role: Role; kind: 'diffusers'; folder: string } | { role: Role; kind: 'part'; part: Part; folder?: string };

export class ModelSet implements FluxCheckpoint {
  readonly layout: 'diffusers' | 'single-files';
  readonly variant: 'dev' | 'schnell';
  readonly transformerConfig: FluxTransformerConfig;
  private readonly index?: Json;
  private top?: { parts: Part[]; files: string[] };
  private pinnedParts?: Part[];
  private readonly located = new Map<Role, Located>();
  private readonly components = new Map<ComponentName, Component>();
  private transformer?: NamedWeights;
  /** The config implied by the transformer file's own shapes (BFL keys), when that is how it is stored. */
  private readonly fileConfig?: FluxTransformerConfig;
  private readonly transformerConfigFile: string;

  /**
   * `dir`: the folder; `source`: what the user gave (for messages); `pinned`: a weights file the user named, whose
   * parts win over other files in the folder.
   */
  constructor(
    readonly dir: string,
    readonly source: string = dir,
    private readonly pinned?: string,
  ) {
    const indexFile = path.join(dir, 'model_index.json');
    if (existsSync(indexFile)) {
      this.index = readJson(indexFile, 'model_index.json');
      checkPipeline(this.index);
      checkDeclared(this.index, 'transformer', ['FluxTransformer2DModel']);
    }
    this.layout = this.index ? 'diffusers' : 'single-files';
    const loc = this.locate('transformer');
    const configPath = this.configPath(loc);
    const fromJson =
      configPath && fluxConfigFromDiffusers(readJson(configPath, 'transformer/config.json'), 'transformer/config.json');
    if (loc.kind === 'diffusers' || loc.part.keys === 'diffusers') {
      if (!fromJson)
        throw new CheckpointError(
          `${this.label(loc)}: a transformer in diffusers key names needs its config.json; put both in a transformer/ folder`,
        );
      this.transformerConfig = fromJson;
      this.transformerConfigFile = 'transformer/config.json';
    } else {
      const file = loc.part.file;
      // RoPE axes are not visible in the weights: a config.json beside the file, else params.json, else FLUX.1's.
      const params = fromJson ? { axes_dim: fromJson.axesDimsRope, theta: fromJson.ropeTheta } : this.params(loc);
      this.fileConfig = bflConfig(file, params);
      this.transformerConfig = fromJson || this.fileConfig;
      this.transformerConfigFile = fromJson ? 'transformer/config.json' : `the shapes of ${file.label}`;
    }
    this.variant = this.transformerConfig.guidanceEmbeds ? 'dev' : 'schnell';
  }

  // ---- finding the parts ----

  private topLevel(): { parts: Part[]; files: string[] } {
    if (!this.top) {
      const files = readdirSync(this.dir)
        .filter((f) => WEIGHT_FILE.test(f) && statSync(path.join(this.dir, f)).isFile())
        .sort();
      const parts: Part[] = [];
      for (const f of files) {
        const found = partsOf(openTensorFile(path.join(this.dir, f), f));
        if (found.length === 0)
          log.debug({ file: f }, 'not a FLUX.1 part (no transformer, text encoder or VAE tensors); ignored');
        parts.push(...found);
      }
      this.top = { parts, files };
    }
    return this.top;
  }

  private locate(role: Role): Located {
    const hit = this.located.get(role);
    if (hit) return hit;
    const loc = this.find(role);
    this.located.set(role, loc);
    return loc;
  }

  private find(role: Role): Located {
    // The file the user named wins for the parts it holds, over both rules.
    this.pinnedParts ??= this.pinned ? partsOf(openTensorFile(this.pinned, path.basename(this.pinned))) : [];
    const mine = this.pinnedParts.find((p) => p.role === role);
    if (mine) return { role, kind: 'part', part: mine };
    const folder = path.join(this.dir, role);
    if (existsSync(folder) && statSync(folder).isDirectory()) {
      const stem = STEMS[role];
      const all = readdirSync(folder)
        .filter((f) => WEIGHT_FILE.test(f))
        .sort();
      // diffusers' own file and its shards all start with the stem; anything else is a second candidate.
      const files = all.filter((f) => !f.startsWith(`${stem}.`) && !f.startsWith(`${stem}-`));
      const own = all.length > files.length || existsSync(path.join(folder, `${stem}.safetensors.index.json`));
      if (own) {
        if (files.length > 0)
          throw new CheckpointError(
            `${role}/ holds both ${stem}.safetensors (diffusers) and ${files.join(', ')}, so which one is the ${ROLE_NAMES[role]} is ambiguous; keep only one there`,
          );
        return { role, kind: 'diffusers', folder };
      }
      // A folder with only a config.json gives the config of the part found by rule 2 (e.g. a CLIP of unusual size).
      if (files.length === 0 && existsSync(path.join(folder, 'config.json')))
        return { ...this.findInFolder(role), folder };
      if (files.length === 0)
        throw new CheckpointError(
          `${role}/ holds neither ${stem}.safetensors (diffusers) nor a single weights file (.safetensors, .sft, .gguf); download the ${ROLE_NAMES[role]} into it`,
        );
      if (files.length > 1)
        throw new CheckpointError(
          `${role}/ holds ${files.length} weights files (${files.join(', ')}), so which one is the ${ROLE_NAMES[role]} is ambiguous; keep only one there`,
        );
      const label = `${role}/${files[0]}`;
      const part = partsOf(openTensorFile(path.join(folder, files[0]!), label)).find((p) => p.role === role);
      if (!part)
        throw new CheckpointError(
          `${label} is not a ${ROLE_NAMES[role]} (its tensor names are not those of any FLUX.1 part in a supported naming); put the right file there`,
        );
      return { role, kind: 'part', part, folder };
    }
    return this.findInFolder(role);
  }

  /** Rule 2: the one file at the top of the folder that holds the part. */
  private findInFolder(role: Role): Located & { kind: 'part' } {
    const top = this.topLevel();
    const all = top.parts.filter((p) => p.role === role);
    if (all.length > 1) {
      throw new CheckpointError(
        `${this.source}: both ${all[0]!.file.label} and ${all[1]!.file.label} hold a ${ROLE_NAMES[role]}, so which one to use is ambiguous; move one of them out of the folder${role === 'transformer' ? ' (or point MODEL_DIR / --model at the file to use)' : ''}`,
      );
    }
    if (all.length === 1) return { role, kind: 'part', part: all[0]! };
    if (this.index && !existsSync(path.join(this.dir, role)))
      throw new CheckpointError(`${role}/ folder is missing (model_index.json lists it)`);
    // A part folder with only its config.json comes here too: its weights file is what is missing, not the folder.
    const folder = path.join(this.dir, role);
    if (existsSync(folder) && statSync(folder).isDirectory())
      throw new CheckpointError(
        `${this.source} has no ${ROLE_NAMES[role]} weights: ${role}/ has a config.json but no ${STEMS[role]}.safetensors (nor another weights file), and none of the ${top.files.length} weights files at the top of the folder holds one. ` +
          `The download is probably incomplete: download ${role}/${STEMS[role]}.safetensors (or all its shards) again.`,
      );
    throw new CheckpointError(
      `${this.source} has no ${ROLE_NAMES[role]}: no ${role}/ folder, and none of its ${top.files.length} weights files (${top.files.slice(0, 4).join(', ') || 'none'}) holds one. ` +
        'Put the file beside the others (see README "Model files people have"), or point MODEL_DIR at the downloaded FLUX.1-dev or FLUX.1-schnell folder.',
    );
  }

  private label(loc: Located): string {
    return loc.kind === 'diffusers' ? `${loc.role}/${STEMS[loc.role]}.safetensors` : loc.part.file.label;
  }

  /** `<part>/config.json` when the part sits in its own folder and that folder has one. */
  private configPath(loc: Located): string | undefined {
    const p = loc.folder && path.join(loc.folder, 'config.json');
    return p && (loc.kind === 'diffusers' || existsSync(p)) ? p : undefined;
  }

  /** BFL's params.json beside the file, else in the model folder. */
  private params(loc: Located): Json | undefined {
    const dirs = [loc.folder, this.pinned && path.dirname(this.pinned), this.dir].filter((d): d is string => !!d);
    const p = dirs.map((d) => path.join(d, 'params.json')).find((f) => existsSync(f));
    return p ? readJson(p, 'params.json') : undefined;
  }

  // ---- FluxCheckpoint ----

  transformerWeights(): NamedWeights {
    if (!this.transformer) {
      const loc = this.locate('transformer');
      const w =
        loc.kind === 'diffusers'
          ? openSafetensorsWeights(loc.folder, STEMS.transformer, 'transformer')
          : loc.part.keys === 'bfl'
            ? mapBflTransformer(loc.part.file, this.fileConfig!)
            : identity(loc.part);
      checkShapes(w, fluxTransformerShapes(this.transformerConfig), this.transformerConfigFile);
      this.transformer = w;
    }
    return this.transformer;
  }

  component(name: ComponentName): Component {
    const hit = this.components.get(name);
    if (hit) return hit;
    const def = COMPONENTS[name];
    const className = this.index ? checkDeclared(this.index, name, [def.className]) : def.className;
    const loc = this.locate(name);
    const { config, configFile } = this.componentConfig(name, loc);
    const weights =
      loc.kind === 'diffusers' ? openSafetensorsWeights(loc.folder, def.stem, name) : partWeights(name, loc.part);
    checkShapes(weights, def.spec(config, configFile), configFile);
    this.checkAgreement(name, config, this.label(loc));
    const c: Component = { name, className, config, configFile, weights };
    this.components.set(name, c);
    return c;
  }

  /** `<part>/config.json` if there is one (diffusers folders always have it), else derived from the file's shapes. */
  private componentConfig(name: ComponentName, loc: Located): { config: Json; configFile: string } {
    const configPath = this.configPath(loc);
    if (configPath || loc.kind === 'diffusers')
      return {
        config: readJson(configPath ?? path.join(loc.folder!, 'config.json'), `${name}/config.json`),
        configFile: `${name}/config.json`,
      };
    const f = loc.part.file;
    if (loc.part.keys === 'diffusers')
      throw new CheckpointError(
        `${f.label}: a ${ROLE_NAMES[name]} in diffusers key names needs its config.json; put both in a ${name}/ folder`,
      );
    const config =
      name === 'text_encoder'
        ? clipConfigFromShapes(f)
        : name === 'text_encoder_2'
          ? t5ConfigFromShapes(f)
          : bflVaeConfig(f, this.params(loc));
    return { config, configFile: `${f.label} (config from its tensor shapes)` };
  }

  /** A part from another model (another width) fails here, naming both files, before any graph is built. */
  private checkAgreement(name: ComponentName, config: Json, file: string): void {
    const t = this.transformerConfig;
    const tr = this.label(this.locate('transformer'));
    const [have, want, what, tensor] =
      name === 'text_encoder'
        ? [
            config.hidden_size,
            t.pooledProjectionDim,
            'CLIP hidden size',
            'its pooled-text input (vector_in / time_text_embed.text_embedder)',
          ]
        : name === 'text_encoder_2'
          ? [config.d_model, t.jointAttentionDim, 'T5 width d_model', 'its text input (txt_in / context_embedder)']
          : [
              4 * Number(config.latent_channels),
              t.inChannels,
              '4 × latent channels (2×2 packed)',
              'its image input (img_in / x_embedder)',
            ];
    if (have !== want)
      throw new CheckpointError(
        `${file}: ${what} is ${String(have)}, but the transformer ${tr} takes ${want} at ${tensor}: the files are from different models; use the ${ROLE_NAMES[name]} that belongs to this transformer`,
      );
  }

  assetFolder(name: AssetFolder): string {
    const folder = path.join(this.dir, name);
    if (existsSync(folder)) return folder;
    if (name === 'scheduler') throw new CheckpointError(`${name}/ folder is missing from ${this.source}`);
    const which = name === 'tokenizer' ? 'CLIP tokenizer (tokenizer/)' : 'T5 tokenizer (tokenizer_2/)';
    throw new CheckpointError(
      `${this.source} has no ${name}/ folder: the ${which} is not inside weights files. Copy tokenizer/ and tokenizer_2/ from the FLUX.1-schnell repository into it ` +
        `(huggingface-cli download black-forest-labs/FLUX.1-schnell --include "tokenizer/*" "tokenizer_2/*" --local-dir ${this.dir})`,
    );
  }

  schedulerConfig(): Json {
    const file = path.join(this.dir, 'scheduler', 'scheduler_config.json');
    if (existsSync(file) || this.index) return readJson(file, 'scheduler/scheduler_config.json');
    log.info(
      { variant: this.variant },
      `no scheduler/ folder: using FLUX.1-${this.variant}'s published scheduler settings`,
    );
    return fluxScheduler(this.variant);
  }

  form(role: Role): ComponentForm {
    const loc = this.locate(role);
    if (loc.kind === 'diffusers') {
      const w = openSafetensorsWeights(loc.folder, STEMS[role], role);
      return { file: w.label, keys: 'diffusers', storage: storageSummary(w) };
    }
    const p = loc.part;
    return { file: p.file.label, keys: p.prefix ? 'comfyui' : p.keys, storage: storageSummary(p.file) };
  }
}

function identity(part: Part): MappedWeights {
  const out = new Map<string, { src: TensorSource; file: string }>();
  for (const n of part.file.names()) out.set(n, { src: part.file.source(n), file: part.file.label });
  return new MappedWeights(part.file.label, out);
}

function partWeights(name: ComponentName, part: Part): NamedWeights {
  if (name === 'vae') return part.keys === 'bfl' ? mapBflVae(part.file) : identity(part);
  return name === 'text_encoder' ? clipWeights(part.file) : t5Weights(part.file);
}
