import { botCommand } from '../bot-command.ts';

export const command = botCommand({
  name: 'start',
  summary: 'run the Discord bot with an embedded worker, SQLite store and durable queue (what `npm start` runs)',
  embeddedWorker: true,
});
