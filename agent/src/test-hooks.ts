/**
 * The one test-only entry into a real agent process. End-to-end tests and
 * benchmarks set these `LATCHKEY_*` variables to make a real `latchkey`
 * crash at a renewal step, back off less, sleep in shorter slices or run
 * without the control channel. They are read here, once, by the process
 * entry point, and passed down as ordinary options; library code takes the
 * option and never looks at the environment for them. Unit tests pass the
 * options directly. None is a user setting: do not document them as such.
 */
import type { Backoff } from './util/backoff.js';

/** Steps of a renewal (renew.ts) at which a test can make the process SIGKILL itself, as a power cut would. */
export type CrashPoint = 'after-lock' | 'after-generate' | 'after-issue' | 'after-commit' | 'after-delete';
export const CRASH_POINTS: readonly CrashPoint[] = ['after-lock', 'after-generate', 'after-issue', 'after-commit', 'after-delete'];

export interface TestHooks {
  /** `LATCHKEY_TEST_CRASH_AT`: SIGKILL at this step of a renewal. */
  crashAt?: CrashPoint;
  /** `LATCHKEY_BACKOFF_CAP_MS`: retry backoff of the renew loop and the control channel (base 500 ms, this cap). */
  backoff?: Backoff;
  /** `LATCHKEY_RUN_SLICE_MS`: the renew loop's longest single sleep. */
  runSliceMs?: number;
  /** `LATCHKEY_CONTROL_CHANNEL=off`: `latchkey run` without the control channel. */
  noControlChannel?: boolean;
  /**
   * `LATCHKEY_SEA_DEBUG=1`: the single executable says where it loaded each native addon from. Read where the
   * addon is loaded (sea/native-addon.ts), since that happens inside `require`, before any entry point runs.
   */
  seaDebug?: boolean;
}

export function readTestHooks(env: NodeJS.ProcessEnv): TestHooks {
  const positive = (v: string | undefined): number | undefined => (v && Number(v) > 0 ? Number(v) : undefined);
  const crashAt = CRASH_POINTS.find((p) => p === env.LATCHKEY_TEST_CRASH_AT);
  const cap = positive(env.LATCHKEY_BACKOFF_CAP_MS);
  const slice = positive(env.LATCHKEY_RUN_SLICE_MS);
  return {
    ...(crashAt ? { crashAt } : {}),
    ...(cap ? { backoff: { baseMs: 500, capMs: cap } } : {}),
    ...(slice ? { runSliceMs: slice } : {}),
    ...(env.LATCHKEY_CONTROL_CHANNEL === 'off' ? { noControlChannel: true } : {}),
    ...(env.LATCHKEY_SEA_DEBUG === '1' ? { seaDebug: true } : {}),
  };
}
