/**
 * In-process mutual exclusion by key. Used where many requests would
 * otherwise queue on one database row lock (a shared enrollment token): they
 * queue here instead, where waiting costs nothing, and reach the database one
 * at a time per key. It is an optimisation, never the correctness guarantee:
 * other replicas do not see it, and the database still enforces the limit.
 */
export interface KeyedMutex {
  /** Resolves with a release function once the caller holds `key`. */
  acquire(key: string): Promise<() => void>;
  /** Keys currently held or waited on (for tests). */
  readonly size: number;
}

export function keyedMutex(): KeyedMutex {
  const tails = new Map<string, Promise<void>>();
  return {
    async acquire(key) {
      const prev = tails.get(key) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      const tail = prev.then(() => mine);
      tails.set(key, tail);
      await prev;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        release();
        // The last holder leaves no entry behind.
        if (tails.get(key) === tail) tails.delete(key);
      };
    },
    get size() {
      return tails.size;
    },
  };
}
