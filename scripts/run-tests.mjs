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
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=300000', ...selected], { stdio: 'inherit' });
process.exit(r.status ?? 1);
