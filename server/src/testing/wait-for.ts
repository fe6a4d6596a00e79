/**
 * Waiting on an event instead of sleeping: `until(what, f)` resolves as soon
 * as `f()` holds, checked at once and again on every `changed()` (call it
 * where the thing under test does something: a fake effect, a message). The
 * timer only bounds a failure; it never decides success.
 */
import assert from 'node:assert/strict';

export interface Waits {
  /** Re-checks every pending wait. */
  changed(): void;
  until(what: string, f: () => boolean, ms?: number): Promise<void>;
}

/** `context` adds what a timeout message should show (the log, what was received). */
export function waits(context: () => string): Waits {
  const waiters = new Set<() => void>();
  return {
    changed() {
      for (const w of [...waiters]) w();
    },
    until(what, f, ms = 10_000) {
      return new Promise((resolve, reject) => {
        if (f()) return resolve();
        const check = (): void => {
          if (!f()) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new assert.AssertionError({ message: `timed out after ${ms} ms waiting for ${what}; ${context()}` }));
        }, ms);
        waiters.add(check);
      });
    },
  };
}
