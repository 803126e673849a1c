/**
 * `plan --batch` and `edit --batch`: one input per non-blank line of a file, answered in one process (a Node
 * start-up costs about 3 s, an offline answer a few milliseconds). With an LLM a few calls overlap; answers are
 * printed in input order as soon as each is next in line, and a line that fails prints its error and the batch
 * goes on.
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../config/errors.ts';

export interface LineBatch {
  /** How many lines may be in flight at once. */
  parallel: number;
  answer(input: string, line: number): Promise<string>;
  failure(error: string, input: string, line: number): string;
}

export async function runLineBatch(file: string, b: LineBatch): Promise<number> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read the batch file ${file}: ${(e as Error).message}`);
  }
  const lines = text
    .split(/\r?\n/)
    .map((l, i) => ({ line: i + 1, text: l.trim() }))
    .filter((l) => l.text);
  const results: (string | undefined)[] = new Array(lines.length);
  let printed = 0;
  const flush = () => {
    while (printed < lines.length && results[printed] !== undefined) process.stdout.write(`${results[printed++]}\n`);
  };
  let next = 0;
  const worker = async () => {
    while (next < lines.length) {
      const k = next++;
      const { line, text: input } = lines[k]!;
      try {
        results[k] = await b.answer(input, line);
      } catch (e) {
        results[k] = b.failure((e as Error).message, input, line);
      }
      flush();
    }
  };
  await Promise.all(Array.from({ length: Math.min(b.parallel, lines.length) }, worker));
  flush();
  return 0;
}
