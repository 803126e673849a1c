// Real `scenewright worker` processes for the cluster tests: REDIS_URL and MODEL_DIR only (no DATA_DIR, no
// SQLite file), as on a GPU machine that shares nothing with the bot but Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { repoRoot } from '../support/fixtures.ts';

export interface WorkerProcess {
  proc: ChildProcess;
  pid: number;
  model: string;
  /** What it printed (pino JSON lines), for assertions on its log. */
  output: string[];
}

export function startWorker(
  redisUrl: string,
  modelDir: string,
  model: string,
  env: Record<string, string> = {},
): WorkerProcess {
  const proc = spawn(process.execPath, ['bin/scenewright.js', 'worker'], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      REDIS_URL: redisUrl,
      MODEL_DIR: modelDir,
      ORT_THREADS: '1',
      WORKER_LEASE_SECONDS: '2',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  proc.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  proc.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  return { proc, pid: proc.pid!, model, output };
}

/** Whether a worker id (BullMQ's processedBy) belongs to this process. */
export function isOf(w: WorkerProcess, workerId: string | null | undefined): boolean {
  return Boolean(workerId && new RegExp(`:${w.pid}:[0-9a-f]+$`).test(workerId));
}

export async function stopWorker(w: WorkerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (w.proc.exitCode !== null || w.proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => w.proc.once('exit', () => r()));
  w.proc.kill(signal);
  const timer = setTimeout(() => w.proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
