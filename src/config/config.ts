import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { registerSecret, setLogLevel } from '../log/logger.ts';
import { defaultWeightsCacheDir, parseWeightForms, type WeightForms } from './weight-forms.ts';

const csv = z
  .string()
  .optional()
  .transform((s) =>
    s
      ? s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : [],
  );

/** The range of each whole-number setting, for messages in plain words. */
const RANGES = new Map<z.ZodType, [number, number]>();

const int = (def: number, min: number, max: number) => {
  const schema = z.coerce.number().int().min(min).max(max).default(def);
  RANGES.set(schema, [min, max]);
  return schema;
};

const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? def : ['true', '1', 'yes'].includes(v)));

const url = z.url({ protocol: /^https?$/ });

/** Every setting, by its environment variable name. Documented one by one in .env.example. */
const EnvSchema = z.object({
  DISCORD_TOKEN: z.string().min(1).optional(),
  DISCORD_APPLICATION_ID: z
    .string()
    .regex(/^\d{15,22}$/, 'must be the numeric application id')
    .optional(),
  DISCORD_API_URL: url.default('https://discord.com/api'),
  DISCORD_DEV_GUILD_ID: z
    .string()
    .regex(/^\d{15,22}$/, 'must be a numeric guild id')
    .optional(),
  MODEL_DIR: z.string().min(1).optional(),
  EXECUTION_PROVIDER: z.enum(['cpu', 'cuda', 'webgpu']).default('cpu'),
  ORT_THREADS: int(0, 0, 256),
  MEMORY_CHECK: z.enum(['on', 'off']).default('on'),
  WEIGHTS: z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      try {
        parseWeightForms(v);
      } catch (e) {
        ctx.addIssue({
          code: 'custom',
          message: `${(e as Error).message}; e.g. WEIGHTS=int8 or WEIGHTS=transformer:int4,t5:int8`,
        });
      }
    }),
  WEIGHTS_CACHE_DIR: z.string().min(1).optional(),
  LORA_DIR: z.string().min(1).optional(),
  OPENAI_BASE_URL: url.optional(),
  OPENAI_API_KEY: z.string().min(1).optional(),
  OPENAI_MODEL: z.string().min(1).default('gpt-4o-mini'),
  OPENAI_TIMEOUT_MS: int(30_000, 1_000, 600_000),
  DATA_DIR: z.string().min(1).default('./data'),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_BLOB_TTL_SECONDS: int(24 * 3600, 60, 30 * 24 * 3600),
  WORKER_LEASE_SECONDS: int(30, 1, 3600),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_REGIONS: int(8, 1, 32),
  MIN_SIZE: int(256, 16, 4096),
  MAX_SIZE: int(1536, 16, 4096),
  DEFAULT_SIZE: int(1024, 16, 4096),
  MAX_STEPS: int(50, 1, 200),
  USER_MAX_CONCURRENT_JOBS: int(2, 1, 100),
  USER_COOLDOWN_SECONDS: int(5, 0, 3600),
  USER_RENDERS_PER_MINUTE: int(10, 1, 1000),
  ALLOWED_GUILD_IDS: csv,
  ALLOWED_CHANNEL_IDS: csv,
  ALLOWED_ROLE_IDS: csv,
  PROMPT_DENY_LIST: csv,
  ALLOW_OTHERS_TO_EDIT: bool(false),
  ATTACHMENT_SIZE_LIMIT: int(8 * 1024 * 1024, 64 * 1024, 500 * 1024 * 1024),
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  discord: { token?: string; applicationId?: string; apiUrl: string; devGuildId?: string };
  model: {
    dir?: string;
    executionProvider: 'cpu' | 'cuda' | 'webgpu';
    threads: number;
    memoryCheck: boolean;
    /** What each component's weights run in; where prepared weights are written once. */
    weights: WeightForms;
    weightsCacheDir: string;
    /** The styles: a folder of LoRA `.safetensors` files, each named by its file's stem. Unset: no styles. */
    loraDir?: string;
  };
  llm: { baseUrl?: string; apiKey?: string; model: string; timeoutMs: number; enabled: boolean };
  dataDir: string;
  redisUrl?: string;
  /** Files in Redis live this long; a worker that has not renewed its job for `leaseMs` has stopped. */
  queue: { blobTtlSeconds: number; leaseMs: number };
  logLevel: Env['LOG_LEVEL'];
  limits: {
    maxRegions: number;
    minSize: number;
    maxSize: number;
    defaultSize: number;
    maxSteps: number;
    userMaxConcurrentJobs: number;
    userCooldownSeconds: number;
    /** History, Layout, Undo and Continue pictures one user may ask for per minute. */
    userRendersPerMinute: number;
    attachmentSizeLimit: number;
  };
  access: {
    /** Empty: any guild the bot is in, and direct messages. */
    allowedGuildIds: string[];
    allowedChannelIds: string[];
    allowedRoleIds: string[];
    promptDenyList: string[];
    allowOthersToEdit: boolean;
  };
}

/** What a command needs beyond the defaults; each need turns unset variables into listed problems. */
export type Need = 'discord' | 'discord-app' | 'model';

const HOW_TO_FIX: Record<string, string> = {
  DISCORD_TOKEN:
    'create a bot at https://discord.com/developers/applications (Bot → Reset Token) and copy its token into .env as DISCORD_TOKEN=...',
  DISCORD_APPLICATION_ID:
    'copy the Application ID from the General Information page of your app in the Discord developer portal into .env',
  MODEL_DIR:
    'download FLUX.1-schnell or FLUX.1-dev (diffusers layout) and set MODEL_DIR to that folder; see README "Getting FLUX weights"',
};

/** Reads `.env` (if present) under the real environment; the real environment wins. */
export function readEnvironment(
  cwd = process.cwd(),
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string | undefined> {
  const file = path.join(cwd, '.env');
  const fromFile = existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {};
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const [k, v] of Object.entries(env)) if (v !== undefined) merged[k] = v;
  // An empty value means "unset", as people write `OPENAI_API_KEY=` in .env to turn a feature off.
  for (const [k, v] of Object.entries(merged)) if (v === '') delete merged[k];
  return merged;
}

/** One problem with one setting, in plain words: what it must be, and what it got. */
function describeProblem(name: string, schema: z.ZodType, got: string | undefined, issue: z.core.$ZodIssue): string {
  const shown = `got '${got ?? ''}'`;
  const range = RANGES.get(schema);
  if (range) return `${name} must be a whole number between ${range[0]} and ${range[1]}; ${shown}`;
  if (issue.code === 'invalid_value' && 'values' in issue)
    return `${name} must be one of ${issue.values.map(String).join(', ')}; ${shown}`;
  if (issue.code === 'invalid_format' && issue.format === 'url')
    return name === 'REDIS_URL'
      ? `${name} must be a redis:// or rediss:// URL, e.g. redis://:password@10.0.0.5:6379/0; ${shown}`
      : `${name} must be an http:// or https:// URL; ${shown}`;
  if (issue.code === 'too_small') return `${name} must not be empty; ${shown}`;
  // Our own messages: "must be the numeric application id", or a sentence of their own (WEIGHTS).
  return issue.code === 'custom' ? `${name}: ${issue.message}; ${shown}` : `${name} ${issue.message}; ${shown}`;
}

export function loadConfig(raw: Record<string, string | undefined>, needs: Need[] = []): Config {
  const problems: string[] = [];
  // Each setting on its own, so one bad value does not hide the checks that need the others: every problem
  // is listed in one pass.
  const values: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(EnvSchema.shape) as [string, z.ZodType][]) {
    const r = schema.safeParse(raw[name]);
    if (r.success) values[name] = r.data;
    else problems.push(describeProblem(name, schema, raw[name], r.error.issues[0]!));
  }
  const e = values as Env;
  const ok = (k: keyof Env) => values[k] !== undefined || raw[k] === undefined;
  const need = (name: keyof Env) => {
    if (raw[name] === undefined) problems.push(`${name} is not set: ${HOW_TO_FIX[name] ?? 'set it in .env'}`);
  };
  if (needs.includes('discord')) need('DISCORD_TOKEN');
  if (needs.includes('discord-app')) need('DISCORD_APPLICATION_ID');
  if (needs.includes('model')) need('MODEL_DIR');
  if (typeof values.MODEL_DIR === 'string' && !existsSync(path.resolve(values.MODEL_DIR)))
    problems.push(
      `MODEL_DIR (${values.MODEL_DIR}) does not exist: set it to the folder you downloaded FLUX.1-schnell or FLUX.1-dev into (README "Getting FLUX weights"), or leave it empty to plan layouts only`,
    );
  if (typeof values.LORA_DIR === 'string' && !existsSync(path.resolve(values.LORA_DIR)))
    problems.push(
      `LORA_DIR (${values.LORA_DIR}) does not exist: set it to the folder of your LoRA .safetensors files (README "Styles (LoRA)"), or leave it empty for no styles`,
    );
  const sizesOk = ok('MIN_SIZE') && ok('MAX_SIZE') && ok('DEFAULT_SIZE');
  for (const k of ['MIN_SIZE', 'MAX_SIZE', 'DEFAULT_SIZE'] as const) {
    if (values[k] !== undefined && e[k] % 16 !== 0)
      problems.push(
        `${k} (${e[k]}) must be a multiple of 16 (FLUX works on 16-pixel tokens): try ${Math.round(e[k] / 16) * 16}`,
      );
  }
  if (sizesOk) {
    if (e.MIN_SIZE > e.MAX_SIZE)
      problems.push(
        `MIN_SIZE (${e.MIN_SIZE}) is larger than MAX_SIZE (${e.MAX_SIZE}): lower MIN_SIZE or raise MAX_SIZE`,
      );
    if (e.DEFAULT_SIZE < e.MIN_SIZE || e.DEFAULT_SIZE > e.MAX_SIZE)
      problems.push(`DEFAULT_SIZE (${e.DEFAULT_SIZE}) must lie between MIN_SIZE and MAX_SIZE`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  // Known secrets are scrubbed from any free-text log line, not only from named fields.
  registerSecret(e.DISCORD_TOKEN);
  registerSecret(e.OPENAI_API_KEY);
  // LOG_LEVEL from .env counts too (the logger itself only sees the real environment).
  if (raw.LOG_LEVEL !== undefined) setLogLevel(e.LOG_LEVEL);
  return {
    discord: {
      token: e.DISCORD_TOKEN,
      applicationId: e.DISCORD_APPLICATION_ID,
      apiUrl: e.DISCORD_API_URL.replace(/\/+$/, ''),
      devGuildId: e.DISCORD_DEV_GUILD_ID,
    },
    model: {
      dir: e.MODEL_DIR,
      executionProvider: e.EXECUTION_PROVIDER,
      threads: e.ORT_THREADS,
      memoryCheck: e.MEMORY_CHECK === 'on',
      weights: parseWeightForms(e.WEIGHTS),
      weightsCacheDir: path.resolve(e.WEIGHTS_CACHE_DIR ?? defaultWeightsCacheDir(raw)),
      ...(e.LORA_DIR ? { loraDir: path.resolve(e.LORA_DIR) } : {}),
    },
    llm: {
      baseUrl: e.OPENAI_BASE_URL,
      apiKey: e.OPENAI_API_KEY,
      model: e.OPENAI_MODEL,
      timeoutMs: e.OPENAI_TIMEOUT_MS,
      enabled: e.OPENAI_BASE_URL !== undefined || e.OPENAI_API_KEY !== undefined,
    },
    dataDir: path.resolve(e.DATA_DIR),
    redisUrl: e.REDIS_URL,
    queue: { blobTtlSeconds: e.REDIS_BLOB_TTL_SECONDS, leaseMs: e.WORKER_LEASE_SECONDS * 1000 },
    logLevel: e.LOG_LEVEL,
    limits: {
      maxRegions: e.MAX_REGIONS,
      minSize: e.MIN_SIZE,
      maxSize: e.MAX_SIZE,
      defaultSize: e.DEFAULT_SIZE,
      maxSteps: e.MAX_STEPS,
      userMaxConcurrentJobs: e.USER_MAX_CONCURRENT_JOBS,
      userCooldownSeconds: e.USER_COOLDOWN_SECONDS,
      userRendersPerMinute: e.USER_RENDERS_PER_MINUTE,
      attachmentSizeLimit: e.ATTACHMENT_SIZE_LIMIT,
    },
    access: {
      allowedGuildIds: e.ALLOWED_GUILD_IDS,
      allowedChannelIds: e.ALLOWED_CHANNEL_IDS,
      allowedRoleIds: e.ALLOWED_ROLE_IDS,
      promptDenyList: e.PROMPT_DENY_LIST.map((w) => w.toLowerCase()),
      allowOthersToEdit: e.ALLOW_OTHERS_TO_EDIT,
    },
  };
}

/** The names every configuration has, in the order .env.example documents them. */
export const CONFIG_NAMES = Object.keys(EnvSchema.shape);

/** Each setting's default as .env would spell it (settings without one are left out): for --help. */
export function configDefaults(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, schema] of Object.entries(EnvSchema.shape) as [string, z.ZodType][]) {
    const r = schema.safeParse(undefined);
    if (!r.success || r.data === undefined) continue;
    const v = r.data;
    if (Array.isArray(v)) continue;
    out[name] = String(v);
  }
  return out;
}
