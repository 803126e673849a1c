// While the painter child loads its model (minutes for the real FLUX), `npm start` takes requests: a job
// that arrives then waits in the queue, and its Discord message says the painter is warming up.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { Harness } from '../bot/harness.ts';

const GATED = path.join(import.meta.dirname, 'gated-painter.ts');
let h: Harness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('a job sent while the painter warms up waits, says so on Discord, and is painted once the model is loaded', async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sw-gate-'));
  const gate = path.join(dir, 'open');
  h = await Harness.start({
    painter: 'engine',
    painterModule: GATED,
    painterExtra: { gate },
    awaitPainter: false,
    env: { MIN_SIZE: '128', DEFAULT_SIZE: '128' },
  });
  expect(h.bot.painting.mode).toBe('loading');
  const { message } = await h.imagine(h.users.alice, 'a red kite', { steps: 2 });
  const warming = await h.fake.waitFor(
    () => {
      const m = h!.fake.messages.get(message.id);
      return m &&
        /⏳ Waiting to paint “a red kite”: next in the queue[\s\S]*the painter is warming up \(loading the model\)/.test(
          m.content,
        )
        ? m
        : undefined;
    },
    'the warming-up note',
    10_000,
  );
  expect(h.buttons(warming).some((b) => b.startsWith('delete:'))).toBe(true);
  const g = h.bot.store.generationForMessage(message.id)!;
  expect((await h.bot.queue.get(g.jobId!))!.status).toBe('queued');
  writeFileSync(gate, '');
  await h.bot.painterSettled;
  expect(h.bot.painting.mode).toBe('ready');
  const done = await h.finished(message.id, 60_000);
  expect(done.content).toMatch(/^✅ “a red kite”/);
});
