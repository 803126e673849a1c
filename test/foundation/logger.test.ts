import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/fixtures.ts';

// The logger writes synchronously to stderr; run it in a child so the real output stream is checked.
function logOutput(script: string): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info' },
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return r.stderr;
}

describe('structured logger', () => {
  it('writes JSON lines and redacts secret fields and registered secret strings', () => {
    const out = logOutput(`
      const { log, registerSecret } = await import('./src/log/logger.ts');
      registerSecret('sk-test-0123456789abcdef');
      log.info({ config: { apiKey: 'sk-test-0123456789abcdef', token: 'MTIz.discord.token' }, headers: { authorization: 'Bot abc' } }, 'starting');
      log.warn('request failed for key sk-test-0123456789abcdef');
    `);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'starting',
      config: { apiKey: '[redacted]', token: '[redacted]' },
    });
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'request failed for key [redacted]' });
    expect(out).not.toContain('sk-test-0123456789abcdef');
    expect(out).not.toContain('MTIz.discord.token');
  });
});

describe('log lines stay small and follow .env', () => {
  it('a failed upload logs its error without the attachment bytes', () => {
    const out = logOutput(`
      const { log } = await import('./src/log/logger.ts');
      const e = Object.assign(new Error('Request entity too large'), {
        code: 40005,
        requestBody: { files: [{ name: 'image.png', data: Buffer.alloc(700_000, 7) }], json: { content: 'x'.repeat(10_000) } },
      });
      log.error({ err: e, upload: new Uint8Array(300_000) }, 'could not show a finished job');
    `);
    expect(out.length).toBeLessThan(8000);
    const line = JSON.parse(out.trim()) as { err: { requestBody: { files: { data: unknown }[] } }; upload: unknown };
    expect(line.err.requestBody.files[0]!.data).toBe('[700000 bytes]');
    // Still a whole error: its message and stack survive.
    expect(line.err).toMatchObject({ type: 'Error', message: 'Request entity too large', code: 40005 });
    expect((line.err as unknown as { stack: string }).stack).toMatch(/^Error: Request entity too large\n\s+at /);
    expect(line.upload).toBe('[300000 bytes]');
  });

  it('LOG_LEVEL from .env applies to loggers made before the configuration was read', () => {
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        `
        const { childLogger } = await import('./src/log/logger.ts');
        const early = childLogger('early');
        const { mkdtempSync, writeFileSync } = await import('node:fs');
        const dir = mkdtempSync((await import('node:os')).tmpdir() + '/sw-env-');
        writeFileSync(dir + '/.env', 'LOG_LEVEL=warn');
        const { loadConfig, readEnvironment } = await import('./src/config/config.ts');
        loadConfig(readEnvironment(dir, {}));
        early.info('hidden');
        early.warn('shown');
      `,
      ],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('hidden');
    expect(r.stderr).toContain('shown');
  });
});
