/** An LLM answer larger than this is refused unread: a layout or an edit is a few kB of JSON. */
export const LLM_ANSWER_MAX_BYTES = 256 * 1024;

export class AnswerTooLargeError extends Error {
  constructor(max: number) {
    super(`the LLM's answer is larger than ${Math.round(max / 1024)} kB; a layout is a few kB, so it was not read`);
    this.name = 'AnswerTooLargeError';
  }
}

/**
 * A fetch for the LLM client that stops reading an answer once it passes `maxBytes` (a 10 MB answer took
 * 12 s to parse), whatever the server says its length is. The planner then falls back as for any LLM failure.
 */
export function cappedFetch(maxBytes: number, inner: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const res = await inner(input, init);
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new AnswerTooLargeError(maxBytes);
    }
    if (!res.body) return res;
    const reader = res.body.getReader();
    let seen = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        seen += value.byteLength;
        if (seen > maxBytes) {
          await reader.cancel().catch(() => undefined);
          controller.error(new AnswerTooLargeError(maxBytes));
          return;
        }
        controller.enqueue(value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}
