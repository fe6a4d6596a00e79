// Runs every compiled test file (`*.test.js` under each package's dist/) with
// node's built-in runner, which prints its summary. Node 20's `--test` does
// not expand globs, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const roots = ['packages/pki/dist', 'packages/tpm/dist', 'packages/protocol/dist', 'packages/cli/dist', 'server/dist', 'agent/dist', 'test/dist'];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
};
for (const r of roots) if (existsSync(r)) walk(r);
if (files.length === 0) {
  console.error('no compiled tests found: run `pnpm run build` first');
  process.exit(1);
}
const filter = process.argv.slice(2);
const selected = filter.length ? files.filter((f) => filter.some((x) => f.includes(x))) : files;
// --test-timeout bounds each test FILE. Files that build the Linux packages
// (minutes of compression, lintian) run after the others, in a run of their own
// with a longer bound.
const SLOW = ['package-linux.test.js', 'package-deb-e2e.test.js'];
const isSlow = (f) => SLOW.some((s) => f.endsWith(s));
// Each run also writes its summary counts (test-totals-reporter.mjs); the
// last line adds them up: "N passed, N failed" (with skipped and cancelled).
const REPORTER = fileURLToPath(new URL('./test-totals-reporter.mjs', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'latchkey-tests-'));
const totals = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
let status = 0;
let i = 0;
for (const [group, timeout] of [[selected.filter((f) => !isSlow(f)), 300_000], [selected.filter(isSlow), 40 * 60_000]]) {
  if (group.length === 0) continue;
  const counts = join(work, `totals-${i++}.txt`);
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${REPORTER}`, `--test-reporter-destination=${counts}`, `--test-timeout=${timeout}`, ...group], { stdio: 'inherit' });
  status ||= r.status ?? 1;
  const got = existsSync(counts) ? readFileSync(counts, 'utf8') : '';
  if (!/^fail \d+$/m.test(got)) status ||= 1; // the runner died before its summary
  for (const m of got.matchAll(/^(\w+) (\d+)$/gm)) if (m[1] in totals) totals[m[1]] += Number(m[2]);
}
rmSync(work, { recursive: true, force: true });
// LATCHKEY_TEST_TOTALS: a file that gathers the totals of several runs (pnpm test:all, two Node versions).
if (process.env.LATCHKEY_TEST_TOTALS) appendFileSync(process.env.LATCHKEY_TEST_TOTALS, `${JSON.stringify({ node: process.version, ...totals })}\n`);
console.log(`tests on Node ${process.version}: ${totals.tests} tests, ${totals.skipped} skipped, ${totals.cancelled} cancelled`);
console.log(`${totals.pass} passed, ${totals.fail + totals.cancelled} failed`);
process.exit(status);
