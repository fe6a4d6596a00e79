// Runs every compiled test file (`*.test.js` under each package's dist/) with
// node's built-in runner, which prints its summary. Node 20's `--test` does
// not expand globs, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

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
let status = 0;
for (const [group, timeout] of [[selected.filter((f) => !isSlow(f)), 300_000], [selected.filter(isSlow), 40 * 60_000]]) {
  if (group.length === 0) continue;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', `--test-timeout=${timeout}`, ...group], { stdio: 'inherit' });
  status ||= r.status ?? 1;
}
process.exit(status);
