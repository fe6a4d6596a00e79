/**
 * `pnpm fuzz [TARGET…] [--seconds N] [--runs N] [--seed N] [--engine sqlite|postgres] [--list]`: long fuzz runs.
 * Runs every target (or the ones named) for N seconds each (default 60),
 * prints cases per second per target, and saves every input that breaks a
 * property under fuzz-corpus/<target>/, which the bounded run in `pnpm test`
 * replays from then on. Exit 1 if any input broke a property.
 */
import { parseArgs } from 'node:util';
import { ownScope, runTimed, type TimedResult } from './fuzz-engine.js';
import { TARGETS, targetNamed } from './fuzz-targets.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { engine: { type: 'string' }, seconds: { type: 'string', default: '60' }, runs: { type: 'string' }, seed: { type: 'string' }, list: { type: 'boolean', default: false } },
});
if (values.list) {
  for (const t of TARGETS) console.log(`${t.name.padEnd(14)} ${t.kind.padEnd(9)} ${t.what}`);
  process.exit(0);
}
const engine = values.engine ?? 'sqlite';
if (engine !== 'sqlite' && engine !== 'postgres') {
  console.error('--engine is sqlite or postgres');
  process.exit(2);
}
const seconds = Number(values.seconds);
if (!(seconds > 0)) {
  console.error('--seconds takes a positive number');
  process.exit(2);
}
let targets;
try {
  targets = positionals.length ? positionals.map(targetNamed) : [...TARGETS];
} catch (e) {
  console.error((e as Error).message);
  process.exit(2);
}
const scope = ownScope(engine);
const results: TimedResult[] = [];
try {
  for (const t of targets) {
    const session = await t.open(scope);
    if (scope.skipped) throw new Error(scope.skipped);
    process.stdout.write(`${t.name.padEnd(14)} `);
    const r = await runTimed(t, session, {
      seconds,
      ...(values.runs ? { runs: Number(values.runs) } : {}),
      ...(values.seed ? { seed: Number(values.seed) } : {}),
      onViolation: (file, message) => process.stdout.write(`\n  VIOLATION saved to ${file}: ${message.slice(0, 300)}\n${''.padEnd(15)}`),
    });
    results.push(r);
    // Resident memory after the target: a bound that does not hold shows as growth from one run to the next.
    const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
    console.log(`${String(r.cases).padStart(8)} cases in ${r.seconds.toFixed(1)} s = ${Math.round(r.cases / r.seconds).toString().padStart(6)} cases/s, ${r.violations.length} violations, rss ${rss} MiB`);
  }
} finally {
  await scope.close();
}
const bad = results.reduce((n, r) => n + r.violations.length, 0);
console.log(bad ? `${bad} violating inputs saved; they are replayed by \`pnpm test\` (fuzz.test)` : 'no violations');
process.exit(bad ? 1 : 0);
