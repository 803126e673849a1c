// A separate process that claims jobs from the same SQLite file as fast as it can and prints what it got:
// used to show that two processes never claim the same job.
import { openDatabase } from '../../src/store/db.ts';
import { SqliteQueue, makeWorkerId } from '../../src/queue/index.ts';

const [dataDir] = process.argv.slice(2);
const queue = new SqliteQueue(openDatabase(dataDir!));
const me = makeWorkerId('claimer');
const got: string[] = [];
let idle = 0;
while (idle < 20) {
  const job = await queue.claim(me, 60_000);
  if (!job) {
    idle++;
    await new Promise((r) => setTimeout(r, 5));
    continue;
  }
  idle = 0;
  got.push(job.id);
  await queue.complete(job.id, me, {
    imagePath: '/x.png',
    artifacts: {},
    model: { id: 'm', version: '1' },
    paintMs: 0,
  });
}
process.stdout.write(JSON.stringify(got));
