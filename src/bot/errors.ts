import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';

/** A refusal or failure whose message is written for the Discord user: shown as is, never logged as a bug. */
export class Refusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Refusal';
  }
}

/** Error codes from Discord's API that change what the bot does next. */
export const DiscordCode = {
  UnknownChannel: 10003,
  UnknownMessage: 10008,
  UnknownInteraction: 10062,
  InvalidWebhookToken: 50027,
  MissingAccess: 50001,
  MissingPermissions: 50013,
  CannotEditOthers: 50005,
  AlreadyAcknowledged: 40060,
  EntityTooLarge: 40005,
} as const;

export function discordCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function httpStatus(e: unknown): number | undefined {
  const status = (e as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' ? status : undefined;
}

/** The interaction token no longer works (15 minutes passed, or Discord dropped it early). */
export function isTokenGone(e: unknown): boolean {
  const code = discordCode(e);
  return code === DiscordCode.InvalidWebhookToken || code === DiscordCode.UnknownInteraction || httpStatus(e) === 401;
}

/** A short id that ties what a user sees to the log line with the details (never shown: paths, raw errors). */
export function errorId(): string {
  return `E${randomBytes(4).toString('hex')}`;
}

/**
 * The words for a user when handling their request failed. A Refusal is shown as written; anything else is
 * logged in full with an id, and the user gets that id and no internal detail (paths, library messages).
 */
export function failureText(e: unknown, log: Logger, fields: Record<string, unknown> = {}): string {
  if (e instanceof Refusal) return e.message;
  const id = errorId();
  log.error({ err: e, errorId: id, ...fields }, 'request failed');
  return `⚠️ Something went wrong on my side (error \`${id}\`). Try again in a moment; if it keeps happening, tell the bot's operator this error id.`;
}

// An absolute path (POSIX or Windows) of two or more parts: server details users must not see.
const PATH = /(?:[A-Za-z]:)?(?:[\\/][^\s'"`:;,()[\]]+){2,}/g;
// What a library or the OS says (errno codes, decoder messages): not words for a Discord user.
const RAW = /\b(E[A-Z]{3,}|Input buffer|Unexpected token|Cannot read propert|undefined is not|is not a function)\b/;

/**
 * A job's error as a user may see it: the engine's own explanations ("this layout needs 18 regional streams…
 * Use fewer regions") stay; file paths become "a file on the server"; raw library errors are left out (the
 * caller logs them with an error id).
 */
export function shownError(error: string | null | undefined): string | undefined {
  if (!error) return undefined;
  if (RAW.test(error)) return undefined;
  return error.replace(PATH, 'a file on the server').trim() || undefined;
}
