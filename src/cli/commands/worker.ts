import { loadConfig, readEnvironment } from '../../config/config.ts';
import { UserError } from '../../config/errors.ts';
import { parseCommandArgs, type CliCommand } from '../command.ts';

const usage = 'scenewright worker';

export const command: CliCommand = {
  summary: 'run a painting worker on the embedded queue in DATA_DIR (for a bot started with `scenewright bot`)',
  usage,
  async run(argv) {
    parseCommandArgs(argv, {}, usage);
    const config = loadConfig(readEnvironment(), ['model']);
    const { childLogger } = await import('../../log/logger.ts');
    const { openDatabase } = await import('../../store/db.ts');
    const { openQueue } = await import('../../queue/index.ts');
    const { createWorkerHost } = await import('../../worker/index.ts');
    const log = childLogger('worker');
    const db = openDatabase(config.dataDir);
    const queue = openQueue(db, { redisUrl: config.redisUrl });
    const host = createWorkerHost(config, queue)!;
    let info;
    try {
      info = await host.start();
    } catch (e) {
      await queue.close();
      db.close();
      throw new UserError(`the model in ${config.model.dir} could not be loaded: ${(e as Error).message}`);
    }
    log.info({ model: info, workerId: host.workerId, dataDir: config.dataDir }, 'worker ready; waiting for jobs');
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    log.info('stopping: the running job (if any) gets 30 s to finish, otherwise it goes back to the queue');
    await host.stop(30_000);
    await queue.close();
    db.close();
    return 0;
  },
};
