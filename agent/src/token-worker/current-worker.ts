/**
 * The token worker for the key the identity names now, for work that keeps
 * coming (the forwarder's connections): a fresh worker once the identity
 * changed (a renewal) or the last one died; a replaced worker is stopped once
 * the work it still carries has ended.
 */
import type { TokenWorker } from './client.js';

export interface CurrentWorker {
  /** Runs `fn` on the current worker, which is not stopped before `fn` settles. */
  use<T>(fn: (w: TokenWorker) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

export function createCurrentWorker(o: {
  spawn: () => TokenWorker;
  /** Changes whenever the identity (its key) changes; identity.json's inode, mtime and size. */
  version: () => Promise<string>;
}): CurrentWorker {
  interface Slot {
    w: TokenWorker;
    version: string;
    busy: number;
    retired: boolean;
  }
  let current: Slot | undefined;
  const all = new Set<Slot>();

  const retire = (s: Slot): void => {
    s.retired = true;
    if (s.busy === 0) {
      all.delete(s);
      void s.w.stop();
    }
  };

  const pick = async (): Promise<Slot> => {
    const version = await o.version();
    if (current && current.version === version && current.w.alive) return current;
    if (current) retire(current);
    const s: Slot = { w: o.spawn(), version, busy: 0, retired: false };
    all.add(s);
    current = s;
    return s;
  };

  return {
    async use(fn) {
      const s = await pick();
      s.busy++;
      try {
        return await fn(s.w);
      } finally {
        s.busy--;
        if (s.retired) retire(s);
      }
    },
    async stop() {
      current = undefined;
      const slots = [...all];
      all.clear();
      await Promise.all(slots.map((s) => s.w.stop()));
    },
  };
}
