/**
 * A fake OpenAI-compatible HTTP server on 127.0.0.1 for tests that drive the REAL `openai` SDK over a socket.
 * Each request to `POST /v1/chat/completions` is recorded and answered by the `respond` callback:
 *
 *   const fake = await startFakeOpenAI({ respond: (req) => ({ json: { ... } }) });
 *   new OpenAI({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 });
 *   ...
 *   fake.requests[0].body.response_format   // what the SDK sent
 *   await fake.close();
 *
 * Response specs:
 *   { json: value }                 chat.completion whose message content is JSON.stringify(value)
 *   { content: 'text' }             message content as given (invalid JSON, prose, fenced JSON …)
 *   { refusal: 'text' }             a refusal message (content null)
 *   { status: 400, error: {...} }   an HTTP error with OpenAI's error body ({ error: { message, type, code } })
 *   { status, body, headers }       any raw HTTP answer
 *   { hang: true }                  never answers (the client's timeout fires)
 * Common options: delayMs (wait before answering), finishReason, usage, model.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  index: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined when the body is not JSON). */
  body: Record<string, unknown> | undefined;
  rawBody: string;
}

interface Common {
  delayMs?: number;
  finishReason?: 'stop' | 'length' | 'content_filter' | 'tool_calls';
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens?: number };
  model?: string;
}

export type FakeResponse =
  | (Common & { json: unknown })
  | (Common & { content: string })
  | (Common & { refusal: string })
  | {
      status: number;
      error?: { message: string; type?: string; code?: string | null; param?: string | null };
      delayMs?: number;
      headers?: Record<string, string>;
    }
  | { status: number; body: string; headers?: Record<string, string>; delayMs?: number }
  | { hang: true };

export interface FakeOpenAIOptions {
  respond: (request: FakeRequest) => FakeResponse | Promise<FakeResponse>;
}

export interface FakeOpenAI {
  /** Base URL for the SDK, ending in /v1. */
  url: string;
  requests: FakeRequest[];
  close(): Promise<void>;
}

function completion(spec: Common & { content: string | null; refusal?: string | null }, req: FakeRequest): unknown {
  const usage = spec.usage ?? { prompt_tokens: 100, completion_tokens: 50 };
  return {
    id: `chatcmpl-fake-${req.index}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: spec.model ?? (req.body?.model as string | undefined) ?? 'fake-model',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: spec.content, refusal: spec.refusal ?? null },
        logprobs: null,
        finish_reason: spec.finishReason ?? 'stop',
      },
    ],
    usage: { ...usage, total_tokens: usage.total_tokens ?? usage.prompt_tokens + usage.completion_tokens },
  };
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export async function startFakeOpenAI(opts: FakeOpenAIOptions): Promise<FakeOpenAI> {
  const requests: FakeRequest[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> | undefined;
        try {
          body = rawBody ? (JSON.parse(rawBody) as Record<string, unknown>) : undefined;
        } catch {
          body = undefined;
        }
        const request: FakeRequest = {
          index: requests.length,
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body,
          rawBody,
        };
        requests.push(request);
        if (request.method !== 'POST' || !request.path.endsWith('/chat/completions')) {
          send(
            res,
            404,
            JSON.stringify({
              error: {
                message: `no route ${request.method} ${request.path}`,
                type: 'invalid_request_error',
                code: null,
              },
            }),
          );
          return;
        }
        let spec: FakeResponse;
        try {
          spec = await opts.respond(request);
        } catch (e) {
          send(
            res,
            500,
            JSON.stringify({
              error: { message: `fake respond() threw: ${(e as Error).message}`, type: 'server_error', code: null },
            }),
          );
          return;
        }
        if ('hang' in spec) return;
        const answer = () => {
          if ('status' in spec) {
            const text =
              'body' in spec
                ? spec.body
                : JSON.stringify({
                    error: {
                      type: 'invalid_request_error',
                      code: null,
                      param: null,
                      ...(spec.error ?? { message: `HTTP ${spec.status}` }),
                    },
                  });
            send(res, spec.status, text, spec.headers);
            return;
          }
          const content = 'json' in spec ? JSON.stringify(spec.json) : 'content' in spec ? spec.content : null;
          const refusal = 'refusal' in spec ? spec.refusal : null;
          send(res, 200, JSON.stringify(completion({ ...spec, content, refusal }, request)));
        };
        if (spec.delayMs) {
          const t = setTimeout(() => {
            timers.delete(t);
            answer();
          }, spec.delayMs);
          timers.add(t);
        } else answer();
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Alias: `start({ respond })`. */
export const start = startFakeOpenAI;

/** The `response_format.type` a request asked for, or undefined. */
export function responseFormatOf(req: FakeRequest): string | undefined {
  return (req.body?.response_format as { type?: string } | undefined)?.type;
}

/** The text of the last user message of a request. */
export function lastUserText(req: FakeRequest): string {
  const messages = (req.body?.messages as { role: string; content: unknown }[] | undefined) ?? [];
  const user = [...messages].reverse().find((m) => m.role === 'user');
  return typeof user?.content === 'string' ? user.content : JSON.stringify(user?.content ?? '');
}

/**
 * An LLM editor answer ("change" unless `fields` says another kind) with nothing in it but `fields`: every other
 * field the schema requires, null or empty.
 */
export function editorChange(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'change',
    references: [],
    update: [],
    add: [],
    remove: [],
    prompt: null,
    background: null,
    exclude: null,
    description: null,
    question: null,
    ...fields,
  };
}
