// The server as shipped in the Linux packages: server/dist/cli.js bundled by
// esbuild into one CommonJS file, run by a copy of the Node that runs the
// packaging, with better-sqlite3's addon beside it and the built console where
// the bundle looks for it (server/src/console/console-assets.ts resolves
// `../../console/dist/` against its own module URL, here the bundle's).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SERVER = join(ROOT, 'server');
const require = createRequire(join(SERVER, 'package.json'));

/** Where things go under the install prefix (/usr/lib/latchkey-server). */
export const SERVER_LAYOUT = {
  node: 'node',
  bundle: 'server/dist/latchkey-server.cjs',
  console: 'console/dist',
};

/**
 * esbuild plugin: better-sqlite3 finds its addon with `bindings`, which walks
 * the file system from the caller's path; in the bundle, the addon is the file
 * of that name beside the bundle.
 */
function bindingsBesideBundle(addons) {
  return {
    name: 'bindings-beside-bundle',
    setup(build) {
      build.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'bindings-beside-bundle' }));
      build.onLoad({ filter: /.*/, namespace: 'bindings-beside-bundle' }, () => ({
        contents: `const known = ${JSON.stringify(addons)};
module.exports = (name) => {
  if (!known.includes(name)) throw new Error('native addon ' + name + ' is not in this package of latchkey-server');
  return require(require('node:path').join(__dirname, name));
};`,
        loader: 'js',
      }));
    },
  };
}

/**
 * Stages the server under `dir` (the future /usr/lib/latchkey-server):
 * returns the files written, relative to `dir`.
 */
export async function stageServer(dir, { log, strip = true }) {
  const entry = join(SERVER, 'dist/cli.js');
  const consoleDir = join(SERVER, 'console/dist');
  if (!existsSync(entry) || !existsSync(join(consoleDir, 'index.html'))) throw new Error(`${relative(process.cwd(), entry)} or the console is not built: run \`pnpm build\` first`);
  const sqliteDir = dirname(require.resolve('better-sqlite3/package.json'));
  const addon = join(sqliteDir, 'build/Release/better_sqlite3.node');
  if (!existsSync(addon)) throw new Error(`better-sqlite3's addon ${addon} is not built: run scripts/setup.sh`);

  const bundle = join(dir, SERVER_LAYOUT.bundle);
  mkdirSync(dirname(bundle), { recursive: true });
  const esbuild = require('esbuild');
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`,
    format: 'cjs',
    define: { 'import.meta.url': '__latchkey_meta_url' },
    banner: { js: 'var __latchkey_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    // pg's optional native client: not installed, required only when asked for (pg.native).
    external: ['pg-native'],
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [bindingsBesideBundle(['better_sqlite3.node'])],
  });
  for (const w of result.warnings) log(`esbuild warning: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}`);
  // A library run by the shipped node, not a script: no #! line from cli.js.
  writeFileSync(bundle, readFileSync(bundle, 'utf8').replace(/^#![^\n]*\n/, ''));
  chmodSync(bundle, 0o644);
  const addonOut = join(dirname(bundle), 'better_sqlite3.node');
  copyFileSync(addon, addonOut);
  chmodSync(addonOut, 0o644);

  // The console where the bundle looks for it.
  const want = fileURLToPath(new URL('../../console/dist/', pathToFileURL(bundle)));
  if (want !== join(dir, SERVER_LAYOUT.console) + '/') throw new Error(`the bundle would look for the console in ${want}, not in ${SERVER_LAYOUT.console}: keep SERVER_LAYOUT in step with server/src/console/console-assets.ts`);
  copyTree(consoleDir, join(dir, SERVER_LAYOUT.console));

  const node = join(dir, SERVER_LAYOUT.node);
  copyFileSync(process.execPath, node);
  chmodSync(node, 0o755);
  if (strip) {
    for (const f of [node, addonOut]) {
      const r = spawnSync('strip', ['--strip-unneeded', f], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`strip ${f} failed: ${(r.error?.message ?? r.stderr).trim()} (install binutils)`);
    }
  }
  log(`server: bundle ${(statSync(bundle).size / 1024 / 1024).toFixed(1)} MiB, node ${process.versions.node} ${(statSync(node).size / 1024 / 1024).toFixed(1)} MiB, better_sqlite3.node ${(statSync(addonOut).size / 1024).toFixed(0)} KiB`);
}

function copyTree(from, to) {
  mkdirSync(to, { recursive: true });
  for (const e of readdirSync(from, { withFileTypes: true })) {
    const a = join(from, e.name);
    const b = join(to, e.name);
    if (e.isDirectory()) copyTree(a, b);
    else if (e.isFile()) {
      copyFileSync(a, b);
      chmodSync(b, 0o644);
    }
  }
}
