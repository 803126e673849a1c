/**
 * JSON answers from any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, llama.cpp server) through the
 * official `openai` SDK. Three ways to ask, tried in this order until the server accepts one (the choice is
 * remembered per client): structured outputs (`chat.completions.parse` + `zodResponseFormat`), JSON mode
 * (`response_format: json_object`) and plain text; in the last two the first JSON object of the answer is
 * taken. Every answer is re-checked with zod and with the caller's checks; on a bad answer the model gets
 * ONE repair turn that shows it the problems. Latency and token usage are logged, never the key.
 */
import OpenAI, {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  PermissionDeniedError,
} from 'openai';
import { ContentFilterFinishReasonError, LengthFinishReasonError } from 'openai/error';
import { zodResponseFormat } from 'openai/helpers/zod';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { z } from 'zod';
import { childLogger, registerSecret } from '../log/logger.ts';

const log = childLogger('llm');

export type ResponseMode = 'json_schema' | 'json_object' | 'text';
export const RESPONSE_MODES: ResponseMode[] = ['json_schema', 'json_object', 'text'];

export interface LlmSettings {
  baseUrl?: string;
  apiKey?: string;
  model: string;
  timeoutMs: number;
  /** SDK retries on 429/5xx/connection errors and timeouts. Default 0: a slow or failing LLM falls back to the
   *  offline planner at once instead of doubling the wait. */
  maxRetries?: number;
  /** Start with this way of asking; 'auto' (default) starts with structured outputs and steps down. */
  mode?: ResponseMode | 'auto';
}

export type LlmFailure = 'timeout' | 'unreachable' | 'auth' | 'model' | 'refused' | 'http' | 'invalid' | 'aborted';

/** The LLM could not give a usable answer; `reason` says why, the message says what to do. */
export class LlmError extends Error {
  constructor(
    message: string,
    readonly reason: LlmFailure,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'LlmError';
  }
}

/** The first complete JSON object in a text (code fences, prose around it and trailing junk allowed). */
export function extractJson(text: string): unknown {
  const trimmed = text.trim();
  try {
    return JSON.parse(trimmed);
  } catch {
    // fall through: look for an object inside
  }
  const start = trimmed.indexOf('{');
  if (start < 0) throw new SyntaxError('the answer contains no JSON object');
  let depth = 0,
    inString = false,
    escaped = false;
  for (let i = start; i < trimmed.length; i++) {
    const c = trimmed[i]!;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) {
      try {
        return JSON.parse(trimmed.slice(start, i + 1));
      } catch (e) {
        throw new SyntaxError(`the JSON object in the answer does not parse: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  throw new SyntaxError('the JSON object in the answer is cut off (unbalanced braces)');
}

function zodIssues(error: z.ZodError): string[] {
  return error.issues.slice(0, 12).map((i) => `${i.path.length ? i.path.join('.') : 'answer'}: ${i.message}`);
}

function isZodError(e: unknown): e is z.ZodError {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as { name?: string }).name === 'ZodError' &&
    Array.isArray((e as { issues?: unknown }).issues)
  );
}

/** A 400 that is about the response format: the server does not support this way of asking. */
function formatUnsupported(e: unknown): boolean {
  if (
    !(e instanceof BadRequestError) &&
    !(e instanceof APIError && (e.status === 422 || e.status === 400 || e.status === 501))
  )
    return false;
  return /response_format|json_schema|json_object|structured|schema|grammar|not supported|unsupported|unknown (field|parameter)|extra (fields|inputs)/i.test(
    e.message,
  );
}

function failure(e: unknown, settings: LlmSettings): LlmError {
  if (e instanceof LlmError) return e;
  if (e instanceof APIConnectionTimeoutError)
    return new LlmError(`the LLM did not answer within ${settings.timeoutMs} ms (OPENAI_TIMEOUT_MS)`, 'timeout', {
      cause: e,
    });
  if (e instanceof APIUserAbortError) return new LlmError('the LLM request was cancelled', 'aborted', { cause: e });
  if (e instanceof APIConnectionError)
    return new LlmError(
      `cannot reach the LLM at ${settings.baseUrl ?? 'https://api.openai.com/v1'}: ${e.message} (check OPENAI_BASE_URL)`,
      'unreachable',
      { cause: e },
    );
  if (e instanceof AuthenticationError || e instanceof PermissionDeniedError)
    return new LlmError(`the LLM server refused the credentials (HTTP ${e.status}): check OPENAI_API_KEY`, 'auth', {
      cause: e,
    });
  if (e instanceof NotFoundError)
    return new LlmError(
      `the LLM server does not know model "${settings.model}" or the endpoint (HTTP 404): check OPENAI_MODEL and OPENAI_BASE_URL`,
      'model',
      { cause: e },
    );
  if (e instanceof ContentFilterFinishReasonError)
    return new LlmError('the LLM refused to answer (content filter)', 'refused', { cause: e });
  if (e instanceof APIError)
    return new LlmError(`the LLM server answered HTTP ${e.status ?? '?'}: ${e.message}`, 'http', { cause: e });
  return new LlmError(`the LLM call failed: ${(e as Error)?.message ?? String(e)}`, 'http', { cause: e });
}

interface Attempt<T> {
  raw: string;
  value?: T;
  problems: string[];
}

export interface StructuredRequest<T> {
  /** Schema name sent with structured outputs ([a-zA-Z0-9_-]). */
  name: string;
  schema: z.ZodType<T>;
  messages: ChatCompletionMessageParam[];
  /** Checks beyond the schema; an empty list means usable. */
  check?: (value: T) => string[];
  signal?: AbortSignal;
  /** For the log line. */
  purpose: string;
}

export interface StructuredResult<T> {
  value: T;
  /** Problems the repair turn did not fix (the caller decides whether to coerce or give up). */
  problems: string[];
  attempts: number;
  mode: ResponseMode;
}

/** An OpenAI-compatible endpoint with a remembered way of asking for JSON. */
export class LlmClient {
  readonly client: OpenAI;
  private modeIndex: number;
  private readonly fixedMode: boolean;

  constructor(
    readonly settings: LlmSettings,
    client?: OpenAI,
  ) {
    registerSecret(settings.apiKey);
    this.client =
      client ??
      new OpenAI({
        // Local servers (Ollama, llama.cpp) need no key, but the SDK insists on one.
        apiKey: settings.apiKey ?? 'no-key',
        baseURL: settings.baseUrl,
        timeout: settings.timeoutMs,
        maxRetries: settings.maxRetries ?? 0,
      });
    const mode = settings.mode ?? 'auto';
    this.modeIndex = mode === 'auto' ? 0 : RESPONSE_MODES.indexOf(mode);
    this.fixedMode = mode !== 'auto';
  }

  get mode(): ResponseMode {
    return RESPONSE_MODES[this.modeIndex]!;
  }

  /** One request in the current mode; steps down a mode when the server rejects the response format. */
  private async ask<T>(
    req: StructuredRequest<T>,
    messages: ChatCompletionMessageParam[],
    attempt: number,
  ): Promise<Attempt<T>> {
    for (;;) {
      const mode = this.mode;
      const started = Date.now();
      try {
        const out = await this.askOnce(req, messages, mode);
        log.info(
          {
            purpose: req.purpose,
            model: this.settings.model,
            mode,
            attempt,
            latencyMs: Date.now() - started,
            usage: out.usage,
            ok: out.problems.length === 0,
          },
          'llm call',
        );
        return out;
      } catch (e) {
        if (!this.fixedMode && formatUnsupported(e) && this.modeIndex < RESPONSE_MODES.length - 1) {
          log.warn(
            { purpose: req.purpose, mode, status: (e as APIError).status, message: (e as Error).message },
            'the LLM server rejects this response format; trying the next one',
          );
          this.modeIndex++;
          continue;
        }
        log.warn(
          {
            purpose: req.purpose,
            model: this.settings.model,
            mode,
            attempt,
            latencyMs: Date.now() - started,
            error: (e as Error).message,
          },
          'llm call failed',
        );
        throw failure(e, this.settings);
      }
    }
  }

  private async askOnce<T>(
    req: StructuredRequest<T>,
    messages: ChatCompletionMessageParam[],
    mode: ResponseMode,
  ): Promise<Attempt<T> & { usage?: unknown }> {
    const options = { signal: req.signal, timeout: this.settings.timeoutMs };
    if (mode === 'json_schema') {
      const base = zodResponseFormat(req.schema, req.name);
      let raw = '';
      // Same request as the helper sends; the parser also keeps the raw text for the repair turn and accepts
      // JSON wrapped in prose or code fences (servers that ignore the schema).
      const format = Object.defineProperties(
        { ...base },
        {
          $brand: { value: 'auto-parseable-response-format', enumerable: false },
          $parseRaw: {
            value: (content: string) => {
              raw = content;
              return req.schema.parse(extractJson(content));
            },
            enumerable: false,
          },
        },
      ) as typeof base;
      try {
        const completion = await this.client.chat.completions.parse(
          { model: this.settings.model, messages, response_format: format },
          options,
        );
        const message = completion.choices[0]?.message;
        if (!message) return { raw, problems: ['the answer has no message'], usage: completion.usage };
        if (message.refusal) throw new LlmError(`the LLM refused: ${message.refusal}`, 'refused');
        if (message.parsed === null || message.parsed === undefined)
          return {
            raw: message.content ?? '',
            problems: ['the answer is empty: reply with the JSON object'],
            usage: completion.usage,
          };
        return {
          raw: message.content ?? raw,
          value: message.parsed as T,
          problems: req.check ? req.check(message.parsed as T) : [],
          usage: completion.usage,
        };
      } catch (e) {
        if (e instanceof SyntaxError) return { raw, problems: [`the answer is not valid JSON: ${e.message}`] };
        if (isZodError(e)) return { raw, problems: zodIssues(e) };
        if (e instanceof LengthFinishReasonError)
          return { raw, problems: ['the answer was cut off at the length limit: answer with a shorter JSON object'] };
        throw e;
      }
    }
    const completion = await this.client.chat.completions.create(
      {
        model: this.settings.model,
        messages,
        ...(mode === 'json_object' ? { response_format: { type: 'json_object' as const } } : {}),
      },
      options,
    );
    const choice = completion.choices[0];
    const raw = choice?.message?.content ?? '';
    if (choice?.message?.refusal) throw new LlmError(`the LLM refused: ${choice.message.refusal}`, 'refused');
    if (choice?.finish_reason === 'content_filter')
      throw new LlmError('the LLM refused to answer (content filter)', 'refused');
    if (choice?.finish_reason === 'length')
      return {
        raw,
        problems: ['the answer was cut off at the length limit: answer with a shorter JSON object'],
        usage: completion.usage,
      };
    let data: unknown;
    try {
      data = extractJson(raw);
    } catch (e) {
      return { raw, problems: [`the answer is not valid JSON: ${(e as Error).message}`], usage: completion.usage };
    }
    const parsed = req.schema.safeParse(data);
    if (!parsed.success) return { raw, problems: zodIssues(parsed.error), usage: completion.usage };
    return { raw, value: parsed.data, problems: req.check ? req.check(parsed.data) : [], usage: completion.usage };
  }

  /**
   * Asks for a JSON object of `schema`. Returns the first answer that passes the schema and the checks; after
   * one repair turn returns the repaired answer with any problems left; throws LlmError when no answer even
   * fits the schema, or on transport failures.
   */
  async structured<T>(req: StructuredRequest<T>): Promise<StructuredResult<T>> {
    const first = await this.ask(req, req.messages, 1);
    if (first.value !== undefined && !first.problems.length)
      return { value: first.value, problems: [], attempts: 1, mode: this.mode };
    const repair: ChatCompletionMessageParam[] = [
      ...req.messages,
      { role: 'assistant', content: first.raw.slice(0, 6000) || '(empty answer)' },
      {
        role: 'user',
        content: `Your answer cannot be used:\n${first.problems.map((p) => `- ${p}`).join('\n')}\nReply again with only the corrected JSON object for the same request, following every rule.`,
      },
    ];
    const second = await this.ask(req, repair, 2);
    if (second.value !== undefined)
      return { value: second.value, problems: second.problems, attempts: 2, mode: this.mode };
    if (first.value !== undefined)
      return { value: first.value, problems: first.problems, attempts: 2, mode: this.mode };
    throw new LlmError(
      `the LLM gave no usable answer after a repair attempt: ${second.problems.slice(0, 3).join('; ')}`,
      'invalid',
    );
  }
}

/** An LlmClient for the configuration, or undefined when no LLM is configured (offline planner). */
export function llmFromConfig(llm: {
  baseUrl?: string;
  apiKey?: string;
  model: string;
  timeoutMs: number;
  enabled: boolean;
}): LlmClient | undefined {
  if (!llm.enabled) return undefined;
  return new LlmClient({ baseUrl: llm.baseUrl, apiKey: llm.apiKey, model: llm.model, timeoutMs: llm.timeoutMs });
}
