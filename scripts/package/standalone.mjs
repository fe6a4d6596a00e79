// The command line the package builders share when run alone, before (or
// without) the `pnpm package` aggregator:
//   node scripts/package/<builder>.mjs [--out-dir D] [--version V] [--binary FILE]
// Without --binary, the agent's single executable for the builder's target
// is built first with agent/scripts/package.mjs into D/.agent/.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The agent single executable for `target`, built into `dir` by agent/scripts/package.mjs. */
export function packageAgent(target, dir) {
  const r = spawnSync(process.execPath, [join(ROOT, 'agent/scripts/package.mjs'), '--target', target, '--out-dir', dir, '--no-timing'], { cwd: join(ROOT, 'agent'), stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`agent/scripts/package.mjs --target ${target} failed (exit ${r.status})`);
  return join(dir, `latchkey-${target}${target.startsWith('win') ? '.exe' : ''}`);
}

/** The tiny CLI both builders share: --out-dir D [--version V] [--binary FILE]. */
export async function cli(build, target, argv = process.argv.slice(2)) {
  const { values } = parseArgs({ args: argv, options: { 'out-dir': { type: 'string', default: 'dist/packages' }, version: { type: 'string' }, binary: { type: 'string' } } });
  const version = values.version ?? JSON.parse(readFileSync(join(ROOT, 'agent/package.json'), 'utf8')).version;
  const outDir = resolve(values['out-dir']);
  const files = await build({
    outDir,
    version,
    agentBinary: async (t) => {
      if (t !== target) throw new Error(`this builder takes the ${target} binary, not ${t}`);
      return values.binary ? resolve(values.binary) : packageAgent(target, join(outDir, '.agent'));
    },
    log: (s) => process.stdout.write(`package: ${s}\n`),
  });
  for (const f of files) process.stdout.write(`${f}\n`);
}

