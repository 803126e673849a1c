// The real entry points as users run them: `npm run deploy-commands` and `scenewright start` (what
// `npm start` runs) as child processes against the fake Discord; SIGTERM stops the bot cleanly.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/fixtures.ts';
import { FakeDiscord } from '../support/fake-discord/index.ts';
import { Harness, TINY_MODEL } from './harness.ts';

let fake: FakeDiscord | undefined;
let dataDir: string | undefined;
afterEach(async () => {
  await fake?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('command line', () => {
  it('deploy-commands registers the five commands in the dev guild; start answers /imagine and stops on SIGTERM', async () => {
    fake = await FakeDiscord.start();
    const { id: guildId } = fake.addGuild();
    const channel = fake.addChannel(guildId, 'art');
    const alice = fake.join(guildId, 'alice');
    dataDir = mkdtempSync(path.join(tmpdir(), 'sw-cli-'));
    const env = {
      ...process.env,
      LOG_LEVEL: 'silent',
      DISCORD_TOKEN: fake.token,
      DISCORD_APPLICATION_ID: fake.applicationId,
      DISCORD_API_URL: fake.restUrl,
      DISCORD_DEV_GUILD_ID: guildId,
      DATA_DIR: dataDir,
      MODEL_DIR: '',
      OPENAI_API_KEY: '',
      OPENAI_BASE_URL: '',
    };
    const deployed = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'commands/deploy.ts'], {
      cwd: repoRoot,
      env,
    });
    expect(deployed.stdout).toMatch(/registered \/imagine, \/layout, \/queue, \/settings, \/styles in guild \d+/);
    expect(fake.commands.get(guildId)!.map((c) => c.name)).toEqual([
      'imagine',
      'layout',
      'queue',
      'settings',
      'styles',
    ]);

    const bot = spawn(process.execPath, ['bin/scenewright.js', 'start'], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    bot.stderr.on('data', (d) => (stderr += String(d)));
    const exited = new Promise<number | null>((r) => bot.on('exit', (code) => r(code)));
    try {
      await fake.waitFor(() => fake!.connected, 'the bot to connect', 30_000);
      const ix = fake.slashCommand(alice, channel.id, 'imagine', { prompt: 'a green frog on a lily pad' });
      const answer = await fake.waitFor(
        () => {
          const m = ix.originalMessageId ? fake!.messages.get(ix.originalMessageId) : undefined;
          return m?.attachments.length ? m : undefined;
        },
        'the layout',
        30_000,
      );
      expect(ix.ackMs).toBeLessThan(3000);
      expect(answer.content).toMatch(/No image model is configured/);
    } finally {
      bot.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
  });

  it('deploy-commands without credentials says what to set', async () => {
    const env = { ...process.env, DISCORD_TOKEN: '', DISCORD_APPLICATION_ID: '' };
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', 'commands/deploy.ts'], {
      cwd: repoRoot,
      env,
    });
    await expect(run).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/DISCORD_TOKEN is not set/) });
  });

  // Needs the engine's painter (src/engine/painter.ts) and the tiny checkpoint.
  it('`scenewright worker` paints for a bot started without a worker, and stops on SIGTERM', async () => {
    const h = await Harness.start({ painter: 'engine', embeddedWorker: false });
    const worker = spawn(process.execPath, ['bin/scenewright.js', 'worker'], {
      cwd: repoRoot,
      env: { ...process.env, LOG_LEVEL: 'silent', DATA_DIR: h.dataDir, MODEL_DIR: TINY_MODEL },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    worker.stderr.on('data', (d) => (stderr += String(d)));
    const exited = new Promise<number | null>((r) => worker.on('exit', (code) => r(code)));
    try {
      const { message } = await h.imagine(h.users.alice, 'a red ball on a table', { steps: 2 });
      const done = await h.finished(message.id, 120_000);
      expect(done.content, stderr).toMatch(/^✅/);
      expect(h.bot.store.generationForMessage(done.id)!.modelId).toBe('flux.1-schnell');
    } finally {
      worker.kill('SIGTERM');
      await h.close();
    }
    expect(await exited, stderr).toBe(0);
  });
});
