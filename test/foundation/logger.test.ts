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
