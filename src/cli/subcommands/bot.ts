import { botCommand } from '../bot-command.ts';

export const command = botCommand({
  name: 'bot',
  summary:
    'run the Discord bot without a worker (paintings are done by `scenewright worker` processes: on the same DATA_DIR, or anywhere with REDIS_URL)',
  embeddedWorker: false,
});
