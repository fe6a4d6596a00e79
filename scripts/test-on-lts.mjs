#!/usr/bin/env node
// Runs the whole test suite again on the pinned Node.js LTS (node-lts.json),
// whatever Node runs this script:
//
//   1. fetches the LTS for this machine (scripts/node-lts.mjs, checksummed);
//   2. mirrors this checkout's files (tracked and untracked, not ignored) into
//      .lts/checkout, a second copy with its own node_modules;
//   3. there, with the LTS first on PATH and npm_config_nodedir set to it (the
//      native addons compile against its headers; nothing is downloaded from
//      nodejs.org): pnpm install --frozen-lockfile, then `pnpm test` (build,
//      lint, every test), ending with node:test's summary.
//
// Usage: node scripts/test-on-lts.mjs [--prepare-only] [-- COMMAND ARG…]
//   --prepare-only  stop after install + build (what `package.mjs --node lts` uses)
//   -- COMMAND…     run COMMAND in the copy with the LTS instead of `pnpm test`
// Exit status: the command's. LATCHKEY_REQUIRE_ALL and the rest of the
// environment pass through.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_LTS, nodeFor, HOST } from './node-lts.mjs';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const LTS_COPY = join(ROOT, '.lts', 'checkout');

const say = (s) => process.stderr.write(`test-on-lts: ${s}\n`);

/** Mirrors the checkout's files into `dest` (node_modules there is kept; everything else not in the checkout is removed). */
function mirror(dest) {
  const r = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`git ls-files in ${ROOT} failed: ${r.error?.message ?? r.stderr}; this script needs a git checkout`);
  const files = new Set(r.stdout.split('\0').filter((f) => f && existsSync(join(ROOT, f)) && lstatSync(join(ROOT, f)).isFile()));
  // Remove what the checkout no longer has (and every build output: the copy always builds from clean).
  const prune = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const rel = relative(dest, p).split(sep).join('/');
      const st = lstatSync(p);
      if (st.isDirectory()) {
        if (name === 'node_modules') continue;
        prune(p);
        if (readdirSync(p).length === 0) rmSync(p, { recursive: true });
      } else if (!files.has(rel)) rmSync(p, { force: true });
    }
  };
  mkdirSync(dest, { recursive: true });
  prune(dest);
  let copied = 0;
  for (const f of files) {
    const from = join(ROOT, f);
    const to = join(dest, f);
    const a = statSync(from);
    if (existsSync(to)) {
      const b = statSync(to);
      if (b.size === a.size && b.mtimeMs === a.mtimeMs && b.mode === a.mode) continue;
    }
    mkdirSync(dirname(to), { recursive: true });
    rmSync(to, { force: true });
    copyFileSync(from, to);
    chmodSync(to, a.mode & 0o7777);
    utimesSync(to, a.atime, a.mtime);
    copied++;
  }
  return { files: files.size, copied };
}

/** The environment that makes `node`, `pnpm` and node-gyp use the LTS. */
function ltsEnv(dir) {
  return { ...process.env, PATH: `${join(dir, 'bin')}${delimiter}${process.env.PATH ?? ''}`, npm_config_nodedir: dir, npm_node_execpath: undefined, NODE: undefined };
}

/** Runs a step; its output goes to stderr unless `stdout` (stdout stays free for a caller's --json). */
function step(what, cmd, args, { stdout = false, ...opts }) {
  say(what);
  const r = spawnSync(cmd, args, { stdio: ['inherit', stdout ? 'inherit' : 2, 'inherit'], ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw Object.assign(new Error(`${what} failed (exit ${r.status ?? r.signal})`), { status: r.status ?? 1 });
}

/**
 * One user of .lts/checkout at a time (a test run and a package build would
 * rebuild it under each other): .lts/lock holds the pid until this process
 * exits; a lock whose process is gone is taken over.
 */
function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

function lockCopy() {
  const lock = join(ROOT, '.lts', 'lock');
  mkdirSync(dirname(lock), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      process.on('exit', () => rmSync(lock, { force: true }));
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) throw new Error(`${relative(ROOT, LTS_COPY)} is in use by process ${pid} (a test run or a package build on the LTS); wait for it to finish, or remove ${relative(ROOT, lock)} if that process is not this`, { cause: e });
      rmSync(lock, { force: true });
    }
  }
  throw new Error(`cannot take ${relative(ROOT, lock)}`);
}

/**
 * Fetches the LTS, mirrors the checkout into .lts/checkout and installs and
 * builds there with the LTS: { root, node, env }.
 */
export function prepareLtsCopy({ build = true } = {}) {
  if (process.platform === 'win32') throw new Error('the LTS copy is made on Linux or macOS only');
  const lts = nodeFor(HOST, { say });
  lockCopy();
  const env = ltsEnv(lts.dir);
  const m = mirror(LTS_COPY);
  say(`Node ${NODE_LTS.version} (${lts.bin}); ${relative(ROOT, LTS_COPY)} mirrors ${m.files} files (${m.copied} copied)`);
  // node_modules built for another Node (the pin moved): start over.
  const stamp = join(ROOT, '.lts', 'installed-with');
  const installedWith = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : '';
  if (installedWith !== NODE_LTS.version) {
    for (const d of ['.', 'agent', 'server', 'test', ...readdirSync(join(LTS_COPY, 'packages')).map((p) => `packages/${p}`)]) rmSync(join(LTS_COPY, d, 'node_modules'), { recursive: true, force: true });
    rmSync(stamp, { force: true });
  }
  step(`pnpm install --frozen-lockfile with Node ${NODE_LTS.version}`, 'pnpm', ['install', '--frozen-lockfile'], { cwd: LTS_COPY, env });
  writeFileSync(stamp, `${NODE_LTS.version}\n`);
  const v = spawnSync('node', ['-p', 'process.versions.node'], { cwd: LTS_COPY, env, encoding: 'utf8' }).stdout.trim();
  if (v !== NODE_LTS.version) throw new Error(`\`node\` in the LTS environment is ${v}, not ${NODE_LTS.version}: check PATH`);
  if (build) step(`pnpm build with Node ${NODE_LTS.version}`, 'pnpm', ['build'], { cwd: LTS_COPY, env });
  return { root: LTS_COPY, node: lts.bin, env };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const dash = args.indexOf('--');
  const own = dash < 0 ? args : args.slice(0, dash);
  const command = dash < 0 ? ['pnpm', 'test'] : args.slice(dash + 1);
  const bad = own.filter((a) => a !== '--prepare-only');
  try {
    if (bad.length || command.length === 0) throw Object.assign(new Error(`usage: node scripts/test-on-lts.mjs [--prepare-only] [-- COMMAND ARG…] (got ${[...bad].join(' ') || 'no command'})`), { status: 2 });
    const prepareOnly = own.includes('--prepare-only');
    // `pnpm test` builds by itself.
    const { root, env } = prepareLtsCopy({ build: prepareOnly || command.join(' ') !== 'pnpm test' });
    if (!prepareOnly) step(`${command.join(' ')} with Node ${NODE_LTS.version} in ${relative(ROOT, root)}`, command[0], command.slice(1), { cwd: root, env, stdout: true });
  } catch (e) {
    say(e.message);
    process.exitCode = e.status ?? 1;
  }
}
