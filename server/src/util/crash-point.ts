/**
 * Test hook: with LATCHKEY_TEST_CRASH_AT=<point> in the server's environment,
 * the process SIGKILLs itself when it reaches that point, as a power cut
 * would; the crash tests then restart it and check that nothing committed
 * was lost. Inert unless set (read once, in the process entry point).
 */
export type CrashPoint = (point: string) => void;

export const noCrash: CrashPoint = () => undefined;

export function crashPointFromEnv(env: NodeJS.ProcessEnv): CrashPoint {
  const at = env.LATCHKEY_TEST_CRASH_AT;
  if (!at) return noCrash;
  return (point) => {
    if (point === at) process.kill(process.pid, 'SIGKILL');
  };
}
