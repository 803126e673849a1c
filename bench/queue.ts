// The job queue: BullMQ on a real redis-server against the embedded SQLite queue, with 1, 2 and 3 workers
// painting short jobs on the tiny checkpoint (each worker: a WorkerHost with its own painter process and
// its own worker-side queue, as on separate machines). Prints, from one run:
//   - enqueue → start overhead with idle workers (p50 / p99),
//   - throughput of 60 short jobs, as a ratio to one worker (on this machine's cores: workers share them),
//   - Redis memory per waiting job and per stored 1024² trajectory (~11 MB, synthesized),
//   - peak RSS of this process and of the painter processes.
// `npm run bench:queue` (needs redis-server: `apt-get install redis-server`).
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { openDatabase, type Db } from '../src/store/db.ts';
import { RedisQueue } from '../src/queue/redis-queue.ts';
import { SqliteQueue } from '../src/queue/sqlite-queue.ts';
import type { BotQueue, WorkerQueue } from '../src/queue/queue.ts';
import type { Job, NewJob } from '../src/queue/schema.ts';
import { WorkerHost } from '../src/worker/host.ts';
import { ENGINE_PAINTER_MODULE } from '../src/worker/painter.ts';
import { RedisServer } from '../test/support/redis-server.ts';
import { fixture } from '../test/support/fixtures.ts';
import { fmt, peakRssMiB } from './support.ts';

const MODEL_DIR = fixture('tiny-flux-schnell');
const MODEL = 'flux.1-schnell';
const LATENCY_SAMPLES = 30;
const THROUGHPUT_JOBS = 60;

const scene = {
  width: 128,
  height: 128,
  prompt: 'a red ball',
  background: '',
  exclude: [],
  regions: [{ id: 'r1', label: 'a red ball', prompt: 'a shiny red ball', box: { x: 0.25, y: 0.25, w: 0.5, h: 0.5 } }],
};
let serial = 0;
function job(user = 'u'): NewJob {
  serial += 1;
  return {
    userId: `${user}${serial % 10}`,
    request: { kind: 'generate', generationId: `b${serial}`, params: { scene, seed: serial, steps: 1, model: MODEL } },
    target: { userId: user, guildId: 'g', channelId: 'c' },
  };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

function vmHwmMiB(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resolves when every listed job has finished (seen on the bot side's feed or by looking). */
async function finished(queue: BotQueue, ids: string[]): Promise<Job[]> {
  const out: Job[] = [];
  for (const id of ids) {
    for (;;) {
      const j = await queue.get(id);
      if (j && (j.status === 'done' || j.status === 'failed' || j.status === 'cancelled')) {
        if (j.status !== 'done') throw new Error(`job ${id} ended ${j.status}: ${j.error}`);
        out.push(j);
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  return out;
}

interface Setup {
  bot: BotQueue;
  hosts: WorkerHost[];
  close(): Promise<void>;
}

async function hostsOn(queues: WorkerQueue[], dataDirs: string[]): Promise<WorkerHost[]> {
  const hosts = queues.map(
    (queue, i) =>
      new WorkerHost({
        queue,
        dataDir: dataDirs[i]!,
        painterModule: ENGINE_PAINTER_MODULE,
        painterOptions: { modelDir: MODEL_DIR, executionProvider: 'cpu', threads: 1 },
        progressEveryMs: 500,
      }),
  );
  await Promise.all(hosts.map((h) => h.start()));
  return hosts;
}

async function redisSetup(url: string, workers: number, dir: string): Promise<Setup> {
  const db = openDatabase(dir);
  const prefix = `bench${randomBytes(3).toString('hex')}`;
  const bot = await RedisQueue.open({ url, db, dataDir: dir, prefix, reconcileMs: 1000 });
  const remote = await Promise.all(Array.from({ length: workers }, () => RedisQueue.open({ url, prefix })));
  const hosts = await hostsOn(
    remote,
    remote.map((q) => q.workDir),
  );
  return {
    bot,
    hosts,
    async close() {
      await Promise.all(hosts.map((h) => h.stop()));
      await Promise.all(remote.map((q) => q.close()));
      await bot.close();
      db.close();
    },
  };
}

async function sqliteSetup(workers: number, dir: string): Promise<Setup> {
  // The embedded queue as `npm start` runs it: one SQLite file, workers in the same program (default polls).
  const db: Db = openDatabase(dir);
  const bot = new SqliteQueue(db);
  const hosts = await hostsOn(
    Array.from({ length: workers }, () => bot),
    Array.from({ length: workers }, () => dir),
  );
  return {
    bot,
    hosts,
    async close() {
      await Promise.all(hosts.map((h) => h.stop()));
      await bot.close();
      db.close();
    },
  };
}

interface Row {
  queue: string;
  workers: number;
  p50: number;
  p99: number;
  throughputMs: number;
  painterRss: number;
}

async function measure(name: string, s: Setup, workers: number): Promise<Row> {
  // Warm every painter once (first-run session set-up is not queue overhead).
  await finished(
    s.bot,
    await Promise.all(Array.from({ length: workers * 2 }, async () => (await s.bot.enqueue(job())).job.id)),
  );
  const overhead: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const t0 = Date.now();
    const { job: j } = await s.bot.enqueue(job());
    const [done] = await finished(s.bot, [j.id]);
    overhead.push(done!.startedAt! - t0);
  }
  const t0 = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < THROUGHPUT_JOBS; i++) ids.push((await s.bot.enqueue(job(`t${i % 10}`))).job.id);
  await finished(s.bot, ids);
  const throughputMs = performance.now() - t0;
  const painterRss = Math.max(...s.hosts.map((h) => vmHwmMiB(h.childPid)));
  process.stderr.write(`  ${name} × ${workers}: done\n`);
  return {
    queue: name,
    workers,
    p50: percentile(overhead, 50),
    p99: percentile(overhead, 99),
    throughputMs,
    painterRss,
  };
}

async function redisMemory(url: string, dir: string): Promise<{ perJob: number; perTrajectory: number }> {
  const db = openDatabase(path.join(dir, 'mem'));
  const prefix = 'benchmem';
  const bot = await RedisQueue.open({ url, db, dataDir: path.join(dir, 'mem'), prefix, reconcileMs: 60_000 });
  // A worker that has announced the model but takes nothing: jobs stay waiting.
  const idle = await RedisQueue.open({ url, prefix });
  await idle.serve('idle-worker', { id: MODEL, version: 'bench' });
  const client = new Redis(url);
  const used = async () => Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
  const N = 1000;
  const before = await used();
  for (let i = 0; i < N; i++) await bot.enqueue(job('m'));
  const perJob = ((await used()) - before) / N;
  // A repaint whose parent is a 1024² generation: its trajectory (21 float16 latents of 4096 × 64) and image.
  const parentDir = path.join(dir, 'mem', 'parent');
  mkdirSync(parentDir, { recursive: true });
  const trajectory = path.join(parentDir, 'trajectory.bin');
  writeFileSync(trajectory, randomBytes(21 * 4096 * 64 * 2));
  writeFileSync(path.join(parentDir, 'image.png'), randomBytes(1));
  const before2 = await used();
  const R = 5;
  for (let i = 0; i < R; i++) {
    const j = job('r');
    await bot.enqueue({
      ...j,
      request: {
        ...j.request,
        kind: 'repaint',
        parent: { generationId: 'p', params: j.request.params, artifacts: { 'trajectory.bin': trajectory } },
      },
    });
  }
  const perTrajectory = ((await used()) - before2) / R;
  client.disconnect();
  await idle.close();
  await bot.close();
  db.close();
  return { perJob, perTrajectory };
}

async function main(): Promise<void> {
  const redis = await RedisServer.start();
  const dir = mkdtempSync(path.join(tmpdir(), 'sw-bench-queue-'));
  const rows: Row[] = [];
  try {
    for (const workers of [1, 2, 3]) {
      const r = await redisSetup(redis.url, workers, path.join(dir, `redis-${workers}`));
      rows.push(await measure('bullmq', r, workers));
      await r.close();
    }
    for (const workers of [1, 3]) {
      const s = await sqliteSetup(workers, path.join(dir, `sqlite-${workers}`));
      rows.push(await measure('sqlite', s, workers));
      await s.close();
    }
    const mem = await redisMemory(redis.url, dir);
    const base = (q: string) => rows.find((r) => r.queue === q && r.workers === 1)!.throughputMs;
    console.log(
      `queue benchmark: tiny checkpoint, 128² × 1 step jobs, ORT 1 thread per painter, ${LATENCY_SAMPLES} latency samples, ${THROUGHPUT_JOBS} jobs for throughput`,
    );
    console.log('queue   workers  enqueue→start p50  p99     60 jobs    jobs/s  ratio to 1 worker  painter peak RSS');
    for (const r of rows) {
      console.log(
        `${r.queue.padEnd(7)} ${String(r.workers).padStart(7)}  ${fmt(r.p50, 0).padStart(14)} ms ${fmt(r.p99, 0).padStart(4)} ms ${fmt(r.throughputMs / 1000, 1).padStart(7)} s  ${fmt(THROUGHPUT_JOBS / (r.throughputMs / 1000), 1).padStart(7)}  ${fmt(base(r.queue) / r.throughputMs).padStart(17)}  ${fmt(r.painterRss, 0).padStart(12)} MiB`,
      );
    }
    const bull1 = rows.find((r) => r.queue === 'bullmq' && r.workers === 1)!;
    const sql1 = rows.find((r) => r.queue === 'sqlite' && r.workers === 1)!;
    console.log(
      `bullmq vs sqlite, 1 worker: enqueue→start p50 ${fmt(bull1.p50 / Math.max(1, sql1.p50))}×, 60-job time ${fmt(bull1.throughputMs / sql1.throughputMs)}×`,
    );
    console.log(
      `redis memory: ${fmt(mem.perJob / 1024, 1)} KiB per waiting job; ${fmt(mem.perTrajectory / 2 ** 20, 1)} MiB per waiting repaint carrying a 1024² trajectory (${fmt((21 * 4096 * 64 * 2) / 2 ** 20, 1)} MiB file)`,
    );
    console.log(`peak RSS of this process (bot side and worker hosts): ${fmt(peakRssMiB(), 0)} MiB`);
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
