// The painting process. The worker host forks it (with tsx loaded) and talks to it over IPC: it loads a
// painter module, paints one job at a time and reports progress; a crash here never takes the bot down.
import { pathToFileURL } from 'node:url';
import { childLogger } from '../log/logger.ts';
import { ChildMessageSchema, HostMessageSchema, type ChildMessage } from './protocol.ts';
import type { Painter, PainterModule } from './painter.ts';

const log = childLogger('worker-child');

if (!process.send) {
  process.stderr.write(
    'src/worker/child.ts is started by the worker host over IPC; run `scenewright worker` instead\n',
  );
  process.exit(2);
}

function send(m: ChildMessage): void {
  // Validated on the way out too: a painter returning a wrong shape is reported here, not as a host crash.
  process.send!(ChildMessageSchema.parse(m));
}

let painter: Painter | undefined;
let current: { jobId: string; abort: AbortController } | undefined;

async function init(painterModule: string, options: Parameters<PainterModule['createPainter']>[0]): Promise<void> {
  try {
    const mod = (await import(pathToFileURL(painterModule).href)) as Partial<PainterModule>;
    if (typeof mod.createPainter !== 'function')
      throw new Error(`${painterModule} does not export createPainter(options)`);
    painter = await mod.createPainter(options, {
      onLoading: (info) => send({ type: 'loading', info: { id: info.id, version: info.version } }),
    });
    send({ type: 'ready', info: { id: painter.info.id, version: painter.info.version } });
  } catch (e) {
    send({ type: 'init-error', message: (e as Error).message ?? String(e) });
  }
}

async function run(jobId: string, request: Parameters<Painter['paint']>[0]): Promise<void> {
  if (!painter) return send({ type: 'error', jobId, message: 'the painter is not loaded', cancelled: false });
  if (current) return send({ type: 'error', jobId, message: `busy with job ${current.jobId}`, cancelled: false });
  const abort = new AbortController();
  current = { jobId, abort };
  const started = performance.now();
  try {
    const out = await painter.paint(request, {
      signal: abort.signal,
      onProgress(step, total, preview) {
        if (!abort.signal.aborted) send({ type: 'progress', jobId, step, total, preview });
      },
    });
    if (abort.signal.aborted) send({ type: 'error', jobId, message: 'cancelled', cancelled: true });
    else
      send({
        type: 'result',
        jobId,
        png: out.png,
        artifacts: out.artifacts ?? {},
        paintMs: Math.round(performance.now() - started),
      });
  } catch (e) {
    log.warn({ err: e, jobId }, 'paint failed');
    send({ type: 'error', jobId, message: (e as Error).message ?? String(e), cancelled: abort.signal.aborted });
  } finally {
    current = undefined;
  }
}

process.on('message', (raw) => {
  const parsed = HostMessageSchema.safeParse(raw);
  if (!parsed.success) {
    log.error({ issues: parsed.error.issues }, 'unreadable message from the host');
    return;
  }
  const m = parsed.data;
  switch (m.type) {
    case 'init':
      void init(m.painterModule, m.options);
      break;
    case 'run':
      void run(m.jobId, m.request);
      break;
    case 'cancel':
      if (current?.jobId === m.jobId) current.abort.abort();
      break;
    case 'shutdown':
      void (async () => {
        current?.abort.abort();
        await painter?.close?.();
        process.exit(0);
      })();
      break;
  }
});

// The host is gone (bot stopped or crashed): nothing is left to report to.
process.on('disconnect', () => process.exit(0));
