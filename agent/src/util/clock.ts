/**
 * Time as the agent's loops see it, injected so tests drive them without
 * waiting. A timer does not fire while the machine sleeps: a wall clock that
 * moved further than the monotonic one means the machine slept (or the time
 * was set), and the loops check at once (clockJumpWatch).
 */

export interface Clock {
  now(): Date;
  /** Monotonic milliseconds (performance.now()); does not jump with the wall clock. */
  monotonic(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  monotonic: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** A wall-clock move past the monotonic clock larger than this is a sleep or a time change. */
export const CLOCK_JUMP_MS = 5000;

export interface ClockJumpWatch {
  /** Starts a new interval from now. */
  reset(): void;
  /** How far the wall clock moved beyond the monotonic one since the last reset or check, if more than the threshold; starts a new interval. */
  jumped(): number | undefined;
}

export function clockJumpWatch(clock: Pick<Clock, 'now' | 'monotonic'>, thresholdMs = CLOCK_JUMP_MS): ClockJumpWatch {
  let wall = 0;
  let mono = 0;
  const reset = (): void => {
    wall = clock.now().getTime();
    mono = clock.monotonic();
  };
  reset();
  return {
    reset,
    jumped() {
      const drift = clock.now().getTime() - wall - (clock.monotonic() - mono);
      reset();
      return Math.abs(drift) > thresholdMs ? drift : undefined;
    },
  };
}
