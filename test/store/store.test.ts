import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openStore, openDatabase, migrate, Store, type GenerationParams } from '../../src/store/index.ts';
import { schemaVersion } from '../../src/store/db.ts';

const scene = {
  width: 512,
  height: 512,
  prompt: 'a cat and a dog on a sofa',
  background: 'a living room',
  exclude: [],
  regions: [
    { id: 'r1', label: 'a cat', prompt: 'a tabby cat', box: { x: 0.05, y: 0.3, w: 0.4, h: 0.5 } },
    { id: 'r2', label: 'a dog', prompt: 'a brown dog', box: { x: 0.55, y: 0.3, w: 0.4, h: 0.5 } },
  ],
};
const params: GenerationParams = { scene, seed: 42, steps: 4, model: 'schnell' };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sw-store-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('store', () => {
  it('uses WAL and keeps generations with full parameters across a reopen', () => {
    const store = openStore(dir);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    const g = store.createGeneration({
      kind: 'generate',
      status: 'queued',
      userId: 'u1',
      guildId: 'g1',
      channelId: 'c1',
      requestText: 'a cat and a dog',
      params,
      planner: 'offline',
      timings: { plan: 12 },
    });
    expect(g.id).toMatch(/^g[0-9a-z]{20}$/);
    store.updateGeneration(g.id, {
      status: 'done',
      modelId: 'flux.1-schnell',
      modelVersion: 'tiny-1',
      timings: { paint: 900 },
      finishedAt: 5,
    });
    store.db.close();

    const again = openStore(dir);
    const back = again.getGeneration(g.id)!;
    expect(back.params).toEqual({ ...params, scene: { ...scene } });
    expect(back.status).toBe('done');
    expect(back.modelId).toBe('flux.1-schnell');
    expect(back.modelVersion).toBe('tiny-1');
    expect(back.timings).toEqual({ plan: 12, paint: 900 });
    expect(back.finishedAt).toBe(5);
    again.db.close();
  });

  it('refuses parameters that do not describe a paintable generation', () => {
    const store = openStore(dir);
    expect(() =>
      store.createGeneration({
        kind: 'generate',
        status: 'queued',
        userId: 'u',
        channelId: 'c',
        requestText: 'x',
        params: { ...params, seed: -1 },
      }),
    ).toThrow();
    store.db.close();
  });

  it('maps Discord messages to generations and follows lineage', () => {
    const store = openStore(dir);
    const a = store.createGeneration({
      kind: 'generate',
      status: 'done',
      userId: 'u',
      channelId: 'c',
      requestText: 'first',
      params,
    });
    const b = store.createGeneration({
      kind: 'repaint',
      status: 'done',
      userId: 'u',
      channelId: 'c',
      requestText: 'make the cat black',
      parentId: a.id,
      params: {
        ...params,
        repaint: {
          instruction: 'make the cat black',
          regions: [{ id: 'r1', oldBox: scene.regions[0]!.box, newBox: scene.regions[0]!.box }],
        },
      },
    });
    const c = store.createGeneration({
      kind: 'repaint',
      status: 'done',
      userId: 'u',
      channelId: 'c',
      requestText: 'and the dog white',
      parentId: b.id,
      params,
    });
    store.linkMessage('1001', 'c', a.id, 'result');
    store.linkMessage('1002', 'c', b.id, 'result');
    store.linkMessage('1003', 'c', b.id, 'question', ['make it blue', 'Which one: the left cat or the right cat?']);
    expect(store.generationForMessage('1002')!.id).toBe(b.id);
    expect(store.messageLink('1003')).toMatchObject({
      role: 'question',
      history: ['make it blue', 'Which one: the left cat or the right cat?'],
    });
    expect(store.messageLink('1002')!.history).toEqual([]);
    expect(store.generationForMessage('9999')).toBeUndefined();
    expect(store.messagesFor(b.id).map((m) => m.messageId)).toEqual(['1002', '1003']);
    expect(store.lineage(c.id).map((g) => g.id)).toEqual([c.id, b.id, a.id]);
    store.unlinkMessage('1001');
    expect(store.generationForMessage('1001')).toBeUndefined();
    store.db.close();
  });

  it('writes artifacts next to the generation and records them by name', () => {
    const store = openStore(dir);
    const g = store.createGeneration({
      kind: 'layout',
      status: 'layout',
      userId: 'u',
      channelId: 'c',
      requestText: 'x',
      params,
    });
    const file = store.writeArtifact(g.id, 'layout.png', new Uint8Array([1, 2, 3]));
    expect(file.startsWith(path.join(dir, 'artifacts', g.id))).toBe(true);
    expect([...readFileSync(file)]).toEqual([1, 2, 3]);
    expect(store.getGeneration(g.id)!.artifacts).toEqual({ 'layout.png': file });
    expect(() => store.writeArtifact(g.id, '../escape.png', new Uint8Array(1))).toThrow(/plain file name/);
    store.db.close();
  });

  it('merges, clears and validates per-user settings', () => {
    const store = openStore(dir);
    expect(store.getUserSettings('u')).toEqual({});
    store.setUserSettings('u', { steps: 8, aspect: '16:9' });
    expect(store.setUserSettings('u', { seed: 7 })).toEqual({ steps: 8, aspect: '16:9', seed: 7 });
    expect(store.setUserSettings('u', { aspect: null })).toEqual({ steps: 8, seed: 7 });
    expect(() => store.setUserSettings('u', { aspect: 'wide' })).toThrow();
    expect(store.getUserSettings('u')).toEqual({ steps: 8, seed: 7 });
    store.db.close();
  });

  it('counts usage per day and in total, and knows the last request time', () => {
    const store = openStore(dir);
    const day1 = Date.parse('2026-01-01T12:00:00Z');
    const day2 = Date.parse('2026-01-02T12:00:00Z');
    store.countUsage('u', 'imagine', day1);
    store.countUsage('u', 'imagine', day2);
    store.countUsage('u', 'imagine', day2);
    store.countUsage('u', 'repaint', day2);
    expect(store.usage('u', day2)).toEqual([
      { kind: 'imagine', today: 2, total: 3 },
      { kind: 'repaint', today: 1, total: 1 },
    ]);
    expect(store.lastRequestAt('u')).toBeUndefined();
    const before = Date.now();
    store.createGeneration({ kind: 'layout', status: 'layout', userId: 'u', channelId: 'c', requestText: 'x', params });
    expect(store.lastRequestAt('u')).toBeGreaterThanOrEqual(before);
    store.db.close();
  });

  it('remembers interactions being answered until they are done, and hands leftovers over once', () => {
    const store = openStore(dir);
    store.addPending({ token: 't1', interactionId: 'i1', channelId: 'c', userId: 'u' });
    store.addPending({ token: 't2', interactionId: 'i2', channelId: 'c', userId: 'v' });
    store.removePending('t1');
    store.db.close();
    const again = openStore(dir);
    expect(again.takePending().map((p) => p.interactionId)).toEqual(['i2']);
    expect(again.takePending()).toEqual([]);
    again.db.close();
  });

  it('migrates once and refuses a database from a newer program', () => {
    const db = openDatabase(dir);
    new Store(db, dir);
    new Store(db, dir);
    expect(schemaVersion(db, 'store')).toBe(4);
    db.prepare(`UPDATE schema_versions SET version = 99 WHERE component = 'store'`).run();
    expect(() => new Store(db, dir)).toThrow(/newer than this program knows/);
    expect(() =>
      migrate(db, 'other', [{ version: 1, description: 'x', sql: 'CREATE TABLE other_t (a INTEGER)' }]),
    ).not.toThrow();
    db.close();
  });
});

describe('store journal and folders', () => {
  const make = (store: Store, n: number) => {
    for (let i = 0; i < n; i++) {
      const g = store.createGeneration({
        kind: 'generate',
        status: 'queued',
        userId: 'u1',
        guildId: 'g1',
        channelId: 'c1',
        requestText: `picture ${i}`,
        params,
      });
      store.writeArtifact(g.id, 'layout.png', Buffer.alloc(10));
    }
  };

  it('a checkpoint moves the write-ahead log into the database while another connection keeps reading', () => {
    const store = openStore(dir);
    // The queue's connection polls the same file: SQLite's automatic checkpoints cannot finish behind it.
    const reader = openDatabase(dir);
    const poll = reader.prepare('SELECT count(*) AS n FROM generations');
    const wal = path.join(dir, 'scenewright.sqlite-wal');
    make(store, 12);
    poll.get();
    expect(statSync(wal).size).toBeGreaterThan(0);
    const r = store.checkpoint();
    expect(r.complete).toBe(true);
    expect(statSync(wal).size).toBe(0);
    expect((poll.get() as { n: number }).n).toBe(12);
    reader.close();
    store.db.close();
  });

  it('names the artifact folders the database does not know', () => {
    const store = openStore(dir);
    make(store, 2);
    mkdirSync(path.join(store.artifactsDir, 'g_left_by_an_old_database'));
    expect(store.unknownArtifactFolders()).toEqual(['g_left_by_an_old_database']);
    store.db.close();
  });
});
