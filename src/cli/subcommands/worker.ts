import { loadConfig, readEnvironment } from '../../config/config.ts';
import { UserError } from '../../config/errors.ts';
import type { WorkerQueue } from '../../queue/queue.ts';
import { parseCommandArgs, type CliCommand } from '../command.ts';

const usage = 'scenewright worker';

export const command: CliCommand = {
  summary:
    'run a painting worker: on BullMQ in Redis when REDIS_URL is set (any machine, no shared disk), else on the embedded queue in DATA_DIR (for a bot started with `scenewright bot`)',
  settings: [
    'MODEL_DIR',
    'EXECUTION_PROVIDER',
    'ORT_THREADS',
    'WEIGHTS',
    'LORA_DIR',
    'REDIS_URL',
    'DATA_DIR',
    'LOG_LEVEL',
  ],
  usage,
  async run(argv) {
    parseCommandArgs(argv, {}, usage);
    const config = loadConfig(readEnvironment(), ['model']);
    const { childLogger } = await import('../../log/logger.ts');
    const { createWorkerHost } = await import('../../worker/index.ts');
    const log = childLogger('worker');
    let queue: WorkerQueue;
    let closeDb = () => {};
    if (config.redisUrl) {
      // Everything a job needs comes through Redis: no SQLite file, no DATA_DIR on this machine.
      const { RedisQueue } = await import('../../queue/redis-queue.ts');
      queue = await RedisQueue.open({
        url: config.redisUrl,
        blobTtlSeconds: config.queue.blobTtlSeconds,
        stalledIntervalMs: config.queue.leaseMs,
      });
    } else {
      const { openDatabase } = await import('../../store/db.ts');
      const { openQueue } = await import('../../queue/index.ts');
      const db = openDatabase(config.dataDir);
      queue = await openQueue(db);
      closeDb = () => db.close();
    }
    const host = createWorkerHost(config, queue, {
      leaseMs: config.queue.leaseMs,
      ...(queue.workDir ? { dataDir: queue.workDir } : {}),
    })!;
    log.info({ modelDir: config.model.dir }, 'the painter is warming up (loading the model can take minutes)');
    let info;
    try {
      info = await host.start();
    } catch (e) {
      await queue.close();
      closeDb();
      throw new UserError(`the model in ${config.model.dir} could not be loaded: ${(e as Error).message}`);
    }
    log.info(
      { model: info, workerId: host.workerId, queue: config.redisUrl ? 'redis' : config.dataDir },
      'worker ready; waiting for jobs',
    );
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    log.info('stopping: the running job (if any) gets 30 s to finish, otherwise it goes back to the queue');
    await host.stop(30_000);
    await queue.close();
    closeDb();
    return 0;
  },
};
