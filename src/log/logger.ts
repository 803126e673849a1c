import { pino, type Logger } from 'pino';

// Any field with one of these names is replaced before it reaches a log line, wherever it is nested.
const SECRET_PATHS = [
  'token',
  '*.token',
  '*.*.token',
  'apiKey',
  '*.apiKey',
  '*.*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'DISCORD_TOKEN',
  'OPENAI_API_KEY',
  '*.DISCORD_TOKEN',
  '*.OPENAI_API_KEY',
  'discordToken',
  '*.discordToken',
  'openaiApiKey',
  '*.openaiApiKey',
];

/** Strings that must never appear in a log line even inside free text (tokens, keys). */
const knownSecrets = new Set<string>();

export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 8) knownSecrets.add(value);
}

export function scrub(text: string): string {
  let out = text;
  for (const s of knownSecrets) out = out.split(s).join('[redacted]');
  return out;
}

const LONG_TEXT = 2000;
const MANY_ITEMS = 50;

/**
 * A log field without bulk: bytes (a failed upload carries the image in its request body) become their
 * length, long text and long lists are cut. No log line carries attachment bytes.
 */
export function withoutBulk(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string')
    return value.length > LONG_TEXT ? `${value.slice(0, LONG_TEXT)}… (${value.length} characters)` : value;
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
  // An error's message and stack are not enumerable: serialise it first, as pino would.
  if (value instanceof Error) value = pino.stdSerializers.err(value);
  if (seen.has(value as object)) return '[circular]';
  if (depth > 8) return '[nested too deep]';
  seen.add(value as object);
  if (Array.isArray(value)) {
    const items = value.slice(0, MANY_ITEMS).map((v) => withoutBulk(v, depth + 1, seen));
    if (value.length > MANY_ITEMS) items.push(`… ${value.length - MANY_ITEMS} more`);
    return items;
  }
  // Buffers serialised by an earlier JSON step: { type: 'Buffer', data: [...] }.
  const o = value as Record<string, unknown>;
  if (o.type === 'Buffer' && Array.isArray(o.data)) return `[${o.data.length} bytes]`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = withoutBulk(v, depth + 1, seen);
  return out;
}

function makeLogger(): Logger {
  const level = process.env.LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: SECRET_PATHS, censor: '[redacted]' },
      serializers: {
        err: (e: unknown) => withoutBulk(e instanceof Error ? pino.stdSerializers.err(e) : e),
        error: (e: unknown) => withoutBulk(e instanceof Error ? pino.stdSerializers.err(e) : e),
      },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrub(a) : a)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
      formatters: {
        level: (label) => ({ level: label }),
        log: (o) => withoutBulk(o) as Record<string, unknown>,
      },
    },
    pino.destination({ dest: 2, sync: true }),
  );
}

/** The process-wide logger; logs go to stderr so that CLI output on stdout stays machine-readable. */
export const log: Logger = makeLogger();

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

// pino children copy their parent's level when made; modules make theirs at import, before the configuration
// is read, so a level set later is passed on to each of them.
const children = new Set<Logger>();

/**
 * Sets the level from the configuration (LOG_LEVEL in .env); the real environment, read at start, wins, as
 * it does for every setting.
 */
export function setLogLevel(level: string | undefined): void {
  if (!level || process.env.LOG_LEVEL || !LEVELS.includes(level)) return;
  log.level = level;
  for (const c of children) c.level = level;
}

export function childLogger(component: string): Logger {
  const child = log.child({ component });
  children.add(child);
  return child;
}
