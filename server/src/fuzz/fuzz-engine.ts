/**
 * The fuzz engine: a target is an arbitrary of input bytes and a check that
 * throws FuzzViolation when the property fails (a parser threw something
 * other than its typed error, an endpoint answered 5xx or did not answer).
 * Two ways to run the same targets: `runBounded` (inside `pnpm test`: fixed
 * seed and case count, the committed corpus replayed first) and `runTimed`
 * (`pnpm fuzz`: random seeds for a given time, every violating input saved
 * to the corpus, cases per second reported).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { Engine } from '../storage/db.js';

export class FuzzViolation extends Error {
  override readonly name = 'FuzzViolation';
}

/** What a target's `open` gets: cleanups to run when the session ends. */
export interface FuzzScope {
  after(fn: () => unknown): void;
  skip(message?: string): void;
  /** The database behind the endpoint targets. */
  engine: Engine;
}

export interface FuzzSession {
  /** Inputs as bytes, so that a violating one can be kept as a file and replayed. */
  arbitrary: fc.Arbitrary<Buffer>;
  /** Runs one input; throws FuzzViolation if the property does not hold. */
  check(input: Buffer): Promise<void> | void;
}

export interface FuzzTarget {
  name: string;
  /** What the target feeds its bytes to. */
  what: string;
  /** 'endpoint': drives the app (and its database); 'parser': pure functions. */
  kind: 'parser' | 'endpoint';
  /** Cases of the bounded run inside `pnpm test` (a few seconds on a busy machine). */
  boundedRuns: number;
  open(scope: FuzzScope): Promise<FuzzSession>;
}

/** Longest an endpoint may take for one case before it counts as a hang. */
export const HANG_MS = 15_000;

/** Throws FuzzViolation if `p` does not settle within `ms`. */
export async function within<T>(p: Promise<T>, what: string, ms = HANG_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new FuzzViolation(`${what}: no answer within ${ms / 1000} s (hang)`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a parser; anything thrown that `isOwn` does not accept is a violation. */
export function expectOnly(isOwn: (e: unknown) => boolean, what: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof FuzzViolation) throw e;
    if (isOwn(e)) return;
    const err = e as Error;
    throw new FuzzViolation(`${what} threw ${err?.name ?? typeof e}: ${String(err?.message ?? e).slice(0, 300)}`, { cause: e });
  }
}

// ------------------------------------------------------------------ corpus

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'pnpm-workspace.yaml'))) {
    const up = dirname(d);
    if (up === d) throw new Error('cannot find the repository root (pnpm-workspace.yaml)');
    d = up;
  }
  return d;
}

/** The regression corpus: `fuzz-corpus/<target>/<sha256 prefix>.bin`, one violating input per file. */
export const corpusDir = (target: string): string => resolve(process.env.LATCHKEY_FUZZ_CORPUS ?? join(repoRoot(), 'fuzz-corpus'), target);

export function corpusFiles(target: string): Array<{ file: string; input: Buffer }> {
  const dir = corpusDir(target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => ({ file: join(dir, f), input: readFileSync(join(dir, f)) }));
}

export function saveToCorpus(target: string, input: Buffer): string {
  const dir = corpusDir(target);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${createHash('sha256').update(input).digest('hex').slice(0, 16)}.bin`);
  if (!existsSync(file)) writeFileSync(file, input);
  return file;
}

// ------------------------------------------------------------------ runs

const preview = (b: Buffer): string => (b.length <= 96 ? b.toString('hex') : `${b.subarray(0, 96).toString('hex')}… (${b.length} bytes)`);

/** Fixed unless LATCHKEY_FUZZ_SEED is set, so CI runs the same cases every time. */
export const BOUNDED_SEED = Number(process.env.LATCHKEY_FUZZ_SEED ?? 0x1a7c4e7);

/**
 * The corpus of the target, then `boundedRuns` cases from a fixed seed. On
 * failure fast-check's error names the seed and path to reproduce the case
 * (and the shrunk input, in hex).
 */
export async function runBounded(target: FuzzTarget, s: FuzzSession, runs = target.boundedRuns): Promise<void> {
  for (const { file, input } of corpusFiles(target.name)) {
    try {
      await s.check(input);
    } catch (e) {
      throw new Error(`${target.name}: corpus case ${file} fails again: ${(e as Error).message}`, { cause: e });
    }
  }
  await fc.assert(
    fc.asyncProperty(s.arbitrary, async (input) => {
      await s.check(input);
    }),
    { seed: BOUNDED_SEED, numRuns: runs, reporter: (out) => {
      if (out.failed) {
        const input = out.counterexample?.[0] as Buffer | undefined;
        throw new Error(
          `${target.name}: property failed after ${out.numRuns} cases (seed ${out.seed}, path ${out.counterexamplePath ?? '-'}; rerun with LATCHKEY_FUZZ_SEED=${out.seed}); input ${input ? preview(input) : '?'}: ${out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance)}`,
          { cause: out.errorInstance },
        );
      }
    } },
  );
}

export interface TimedResult {
  target: string;
  cases: number;
  seconds: number;
  violations: Array<{ file: string; message: string }>;
}

/** Random cases for `seconds` (or `runs`); every violating input is saved to the corpus. */
export async function runTimed(target: FuzzTarget, s: FuzzSession, opts: { seconds: number; runs?: number; seed?: number; onViolation?: (file: string, message: string) => void }): Promise<TimedResult> {
  let cases = 0;
  const violations: TimedResult['violations'] = [];
  const seen = new Set<string>();
  const start = performance.now();
  // fast-check's time limit returns without waiting for the case in flight: wait for it here,
  // before the caller closes what the case is talking to.
  let inFlight: Promise<unknown> = Promise.resolve();
  await fc.check(
    fc.asyncProperty(s.arbitrary, async (input) => {
      cases++;
      try {
        const p = Promise.resolve(s.check(input));
        inFlight = p.catch(() => undefined);
        await p;
      } catch (e) {
        const message = (e as Error).message;
        // One input per kind of violation (the message with request ids and numbers blanked), so one bug is one file.
        const kind = message.replace(/"reqId":"[^"]*"/g, '').replace(/\d+/g, 'N');
        if (!seen.has(kind)) {
          seen.add(kind);
          const file = saveToCorpus(target.name, input);
          if (violations.some((v) => v.file === file)) return true;
          violations.push({ file, message });
          opts.onViolation?.(file, message);
        }
      }
      return true;
    }),
    {
      seed: opts.seed ?? Math.floor(Math.random() * 2 ** 31),
      numRuns: opts.runs ?? Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: opts.seconds * 1000,
      markInterruptAsFailure: false,
    },
  );
  await inFlight;
  return { target: target.name, cases, seconds: (performance.now() - start) / 1000, violations };
}

/**
 * A FuzzScope that runs its cleanups, last first, on close(). A component
 * that is missing (PostgreSQL) is recorded in `skipped` (the harness throws
 * instead when LATCHKEY_REQUIRE_ALL=1).
 */
export function ownScope(engine: Engine = 'sqlite'): FuzzScope & { close(): Promise<void>; skipped: string | undefined } {
  const cleanups: Array<() => unknown> = [];
  return {
    engine,
    skipped: undefined,
    after: (fn) => void cleanups.push(fn),
    skip(message) {
      this.skipped = message ?? 'skipped';
    },
    async close() {
      for (const fn of cleanups.splice(0).reverse()) await fn();
    },
  };
}
