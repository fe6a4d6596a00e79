import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TokenWorker, WorkerExit } from './client.js';
import { createCurrentWorker } from './current-worker.js';

/** A worker that only records whether it was stopped. */
function fakeWorker(n: number): TokenWorker & { n: number; stops: number; die(): void } {
  let alive = true;
  let done!: (x: WorkerExit) => void;
  const exited = new Promise<WorkerExit>((r) => (done = r));
  const w = {
    n,
    stops: 0,
    renew: () => Promise.reject(new Error('unused')),
    channel: () => Promise.reject(new Error('unused')),
    connect: () => Promise.reject(new Error('unused')),
    get alive() {
      return alive;
    },
    exited,
    die() {
      alive = false;
      done({ code: 1, signal: null, why: '' });
    },
    async stop() {
      w.stops++;
      w.die();
      return exited;
    },
  };
  return w;
}

test('one worker per identity version: a renewal starts a fresh one, the old one is stopped once its last use ended', async () => {
  const made: ReturnType<typeof fakeWorker>[] = [];
  let version = 'v1';
  const cw = createCurrentWorker({ spawn: () => (made.push(fakeWorker(made.length)), made.at(-1)!), version: async () => version });
  let release!: () => void;
  const held = cw.use(async (w) => {
    await new Promise<void>((r) => (release = r));
    return (w as ReturnType<typeof fakeWorker>).n;
  });
  assert.equal(await cw.use(async (w) => (w as ReturnType<typeof fakeWorker>).n), 0, 'same version, same worker');
  version = 'v2';
  assert.equal(await cw.use(async (w) => (w as ReturnType<typeof fakeWorker>).n), 1, 'a new version gets a fresh worker');
  assert.equal(made[0]!.stops, 0, 'the old worker still carries a connection');
  release();
  assert.equal(await held, 0);
  assert.equal(made[0]!.stops, 1, 'stopped once its last connection ended');
  assert.equal(made[1]!.stops, 0);
  made[1]!.die();
  assert.equal(await cw.use(async (w) => (w as ReturnType<typeof fakeWorker>).n), 2, 'a dead worker is replaced');
  await cw.stop();
  assert.equal(made[2]!.stops, 1);
});
