/**
 * The Linux packages as built by `pnpm package` (scripts/package): what the
 * .debs and .rpms hold (paths, modes, owners), the server unit's sandboxing,
 * lintian with no error or warning, SHA256SUMS checked by sha256sum, and the
 * CycloneDX SBOMs against pnpm-lock.yaml (the production closure only).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { artefact, linuxPackages } from './support/linux-packages.js';
import { mustRun, requireTools, ROOT, run, type TestCtx } from './support/processes.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const LONG = { timeout: 30 * 60_000 };

async function packages(_t: TestCtx): Promise<string | undefined> {
  const r = await linuxPackages();
  if ('error' in r) throw new Error(r.error);
  return r.dir;
}

/** `dpkg-deb -c` as path → "mode owner/group". */
async function debListing(deb: string): Promise<Map<string, string>> {
  const { stdout } = await mustRun('dpkg-deb', ['-c', deb]);
  const m = new Map<string, string>();
  for (const line of stdout.trim().split('\n')) {
    const [mode, owner, , , , ...rest] = line.split(/\s+/);
    m.set(rest.join(' ').replace(/^\./, '').replace(/\/$/, '') || '/', `${mode} ${owner}`);
  }
  return m;
}

async function debFile(deb: string, path: string): Promise<string> {
  const dir = (await mustRun('mktemp', ['-d'])).stdout.trim();
  try {
    await mustRun('dpkg-deb', ['-x', deb, dir]);
    return readFileSync(join(dir, path), 'utf8');
  } finally {
    await run('rm', ['-rf', dir]);
  }
}

/** The lockfile's integrity of name@version (packages section), or undefined. */
function lockIntegrity(name: string, version: string): string | undefined {
  const lock = readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8');
  const key = name.startsWith('@') ? `'${name}@${version}':` : `${name}@${version}:`;
  const at = lock.indexOf(`\n  ${key}\n    resolution: {integrity: `);
  if (at < 0) return undefined;
  return /integrity: ([^,}]+)/.exec(lock.slice(at, at + 400))![1];
}

function lockVersions(name: string): string[] {
  const lock = readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8').split('\nsnapshots:')[0]!;
  const re = new RegExp(`\\n  '?${name.replace(/[/.]/g, (c) => `\\${c}`)}@([0-9][^':(]*)'?:\\n`, 'g');
  return [...lock.matchAll(re)].map((m) => m[1]!);
}

describe('Linux packages (scripts/package: dpkg-deb, rpmbuild)', () => {
  test('the .debs: files, modes, owners, control fields, conffiles and maintainer scripts', LONG, async (t) => {
    if (!requireTools(t, 'dpkg-deb', 'rpmbuild', 'dpkg-shlibdeps', 'strip')) return;
    const dir = await packages(t);
    if (!dir) return;
    const agent = await debListing(artefact(dir, /^latchkey_.*_amd64\.deb$/));
    assert.equal(agent.get('/usr/bin/latchkey'), '-rwxr-xr-x root/root');
    assert.equal(agent.get('/lib/systemd/system/latchkey.service'), '-rw-r--r-- root/root');
    assert.equal(agent.get('/etc/latchkey'), 'drwxr-xr-x root/root');
    assert.equal(agent.get('/usr/share/man/man1/latchkey.1.gz'), '-rw-r--r-- root/root');
    for (const [p, v] of agent) {
      assert.match(v, / root\/root$/, `${p} is owned by root`);
      const parents = ['/', '/usr', '/usr/share', '/lib', '/lib/systemd', '/etc'];
      assert.ok(parents.includes(p) || /^\/(usr\/bin|usr\/share\/(doc|man|lintian)|lib\/systemd\/system|etc\/latchkey)(\/|$)/.test(p), `unexpected path ${p} in the agent .deb`);
    }
    const server = await debListing(artefact(dir, /^latchkey-server_.*_amd64\.deb$/));
    for (const [p, mode] of [
      ['/usr/bin/latchkey-server', '-rwxr-xr-x'],
      ['/usr/lib/latchkey-server/node', '-rwxr-xr-x'],
      ['/usr/lib/latchkey-server/server/dist/latchkey-server.cjs', '-rw-r--r--'],
      ['/usr/lib/latchkey-server/server/dist/better_sqlite3.node', '-rw-r--r--'],
      ['/usr/lib/latchkey-server/console/dist/index.html', '-rw-r--r--'],
      ['/lib/systemd/system/latchkey-server.service', '-rw-r--r--'],
      ['/etc/latchkey-server/latchkey-server.env', '-rw-r--r--'],
      ['/usr/share/man/man8/latchkey-server.8.gz', '-rw-r--r--'],
    ] as const) assert.equal(server.get(p), `${mode} root/root`, p);
    // The data dir is the postinst's (owned by the latchkey user, made at install), never a file of the package: purge cannot remove it.
    assert.ok(![...server.keys()].some((p) => p.startsWith('/var/lib')), 'the server .deb ships nothing under /var/lib');

    for (const [re, name, needs] of [[/^latchkey_/, 'latchkey', ['libc6']], [/^latchkey-server_/, 'latchkey-server', ['libc6', 'libstdc++6', 'adduser']]] as const) {
      const deb = artefact(dir, new RegExp(`${re.source}.*\\.deb$`));
      const fields = (await mustRun('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture', 'Depends'])).stdout;
      assert.match(fields, new RegExp(`^Package: ${name}$`, 'm'));
      assert.match(fields, new RegExp(`^Version: ${VERSION.replace(/\./g, '\\.')}-1$`, 'm'));
      assert.match(fields, /^Architecture: amd64$/m);
      for (const d of needs) assert.match(fields, new RegExp(`^Depends: .*\\b${d.replace('+', '\\+')}\\b`, 'm'), `${name} depends on ${d}`);
    }
    const conffiles = (await mustRun('dpkg-deb', ['-I', artefact(dir, /^latchkey-server_.*\.deb$/), 'conffiles'])).stdout;
    assert.equal(conffiles.trim(), '/etc/latchkey-server/latchkey-server.env');
    const postinst = (await mustRun('dpkg-deb', ['-I', artefact(dir, /^latchkey_.*\.deb$/), 'postinst'])).stdout;
    // Zero-touch: enabled only with an enroll file, systemctl only when systemd runs.
    assert.match(postinst, /if \[ "\$1" = configure \] && \[ -d \/run\/systemd\/system \]; then[\s\S]*if \[ -f \/etc\/latchkey\/enroll\.json \]; then\s+deb-systemd-helper enable latchkey\.service/);
  });

  test('the units: the agent\'s is the one `latchkey service install` writes; the server\'s is sandboxed', LONG, async (t) => {
    if (!requireTools(t, 'dpkg-deb', 'rpmbuild', 'dpkg-shlibdeps', 'strip')) return;
    const dir = await packages(t);
    if (!dir) return;
    const { systemdUnit } = (await import(pathToFileURL(join(ROOT, 'agent/dist/service/service-files.js')).href)) as { systemdUnit: (s: object) => string };
    const agentUnit = await debFile(artefact(dir, /^latchkey_.*\.deb$/), 'lib/systemd/system/latchkey.service');
    const generated = systemdUnit({ command: ['/usr/bin/latchkey'], stateDir: '/var/lib/latchkey', scope: 'system' });
    assert.equal(agentUnit.split('\n').slice(1).join('\n'), generated.split('\n').slice(1).join('\n'));
    assert.match(agentUnit, /^ExecStart=\/usr\/bin\/latchkey run --state-dir \/var\/lib\/latchkey$/m);

    const unit = await debFile(artefact(dir, /^latchkey-server_.*\.deb$/), 'lib/systemd/system/latchkey-server.service');
    for (const line of [
      'User=latchkey', 'Group=latchkey', 'ExecStart=/usr/bin/latchkey-server start --data-dir /var/lib/latchkey-server',
      'LimitNOFILE=65536', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=', 'AmbientCapabilities=', 'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/latchkey-server', 'ProtectHome=yes', 'PrivateTmp=yes', 'PrivateDevices=yes', 'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes', 'ProtectControlGroups=yes', 'RestrictSUIDSGID=yes', 'RestrictNamespaces=yes', 'LockPersonality=yes',
      'SystemCallArchitectures=native', 'SystemCallFilter=@system-service', 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
      'UMask=0077', 'EnvironmentFile=-/etc/latchkey-server/latchkey-server.env',
    ]) assert.ok(unit.split('\n').includes(line), `latchkey-server.service has ${line}`);
    assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=yes/m, 'V8 needs W+X pages');
  });

  test('lintian: no error and no warning on either .deb (overrides only for the embedded Node binary and the upload)', LONG, async (t) => {
    if (!requireTools(t, 'dpkg-deb', 'rpmbuild', 'dpkg-shlibdeps', 'strip', 'lintian')) return;
    const dir = await packages(t);
    if (!dir) return;
    const r = await run('lintian', ['--fail-on', 'error,warning', '--tag-display-limit', '0', artefact(dir, /^latchkey_.*\.deb$/), artefact(dir, /^latchkey-server_.*\.deb$/)]);
    assert.equal(r.code, 0, `lintian:\n${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stdout, /^[EW]: /m, r.stdout);
  });

  test('the .rpms: rpm -qip / -qlvp (rpmlint is not in Debian 12)', LONG, async (t) => {
    if (!requireTools(t, 'dpkg-deb', 'rpmbuild', 'dpkg-shlibdeps', 'strip', 'rpm')) return;
    const dir = await packages(t);
    if (!dir) return;
    const agent = artefact(dir, /^latchkey-\d.*\.x86_64\.rpm$/);
    const server = artefact(dir, /^latchkey-server-\d.*\.x86_64\.rpm$/);
    const info = (await mustRun('rpm', ['-qip', server])).stdout;
    assert.match(info, /^Name\s*: latchkey-server$/m);
    assert.match(info, new RegExp(`^Version\\s*: ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(info, /^Architecture: x86_64$/m);
    const list = (await mustRun('rpm', ['-qlvp', server])).stdout;
    assert.match(list, /^drwx------\s+\d+\s+latchkey\s+latchkey\s.*\/var\/lib\/latchkey-server$/m);
    assert.match(list, /^-rwxr-xr-x\s+\d+\s+root\s+root\s.*\/usr\/lib\/latchkey-server\/node$/m);
    assert.match(list, /^-rw-r--r--\s+\d+\s+root\s+root\s.*\/usr\/lib\/systemd\/system\/latchkey-server\.service$/m);
    const cfg = (await mustRun('rpm', ['-qcp', server])).stdout;
    assert.equal(cfg.trim(), '/etc/latchkey-server/latchkey-server.env');
    const scripts = (await mustRun('rpm', ['-qp', '--scripts', server])).stdout;
    assert.match(scripts, /useradd --system/);
    const agentList = (await mustRun('rpm', ['-qlvp', agent])).stdout;
    assert.match(agentList, /^-rwxr-xr-x\s+\d+\s+root\s+root\s.*\/usr\/bin\/latchkey$/m);
    assert.match(agentList, /\/usr\/lib\/systemd\/system\/latchkey\.service$/m);
    const requires = (await mustRun('rpm', ['-qp', '--requires', agent])).stdout;
    assert.match(requires, /^libc\.so\.6\(GLIBC_/m, 'requires from the ELF file');
    // The SEA blob survives rpmbuild (no strip): the binary in the rpm is the one in the deb.
    const fromRpm = (await mustRun('sh', ['-c', `rpm2cpio "${agent}" | cpio -i --to-stdout ./usr/bin/latchkey 2>/dev/null | sha256sum`])).stdout.split(' ')[0];
    const fromDeb = (await mustRun('sh', ['-c', `dpkg-deb --fsys-tarfile "${artefact(dir, /^latchkey_.*\.deb$/)}" | tar -xO ./usr/bin/latchkey | sha256sum`])).stdout.split(' ')[0];
    assert.equal(fromRpm, fromDeb);
  });

  test('SHA256SUMS covers every artefact and sha256sum -c verifies it', LONG, async (t) => {
    if (!requireTools(t, 'dpkg-deb', 'rpmbuild', 'dpkg-shlibdeps', 'strip', 'sha256sum')) return;
    const dir = await packages(t);
    if (!dir) return;
    const r = await mustRun('sha256sum', ['--strict', '-c', 'SHA256SUMS'], { cwd: dir });
    const checked = r.stdout.trim().split('\n').map((l) => l.replace(/: OK$/, '')).sort();
    const { stdout } = await mustRun('ls', ['-1', dir]);
    assert.deepEqual(checked, stdout.trim().split('\n').filter((f) => f !== 'SHA256SUMS').sort());
    assert.equal(checked.filter((f) => /\.(deb|rpm)$/.test(f)).length, 4);
  });

  test('CycloneDX 1.5 SBOMs: the lockfile\'s production closure with versions, SHA-512 and licenses, and the Node runtime', LONG, async (t) => {
    if (!requireTools(t, 'dpkg-deb', 'rpmbuild', 'dpkg-shlibdeps', 'strip')) return;
    const dir = await packages(t);
    if (!dir) return;
    interface Component { name: string; version: string; purl?: string; hashes?: { alg: string; content: string }[]; licenses?: { license?: { id: string } }[] }
    interface Bom { bomFormat: string; specVersion: string; metadata: { component: { name: string; version: string }; properties: { name: string; value: string }[] }; components: Component[] }
    const load = (product: string): Bom => JSON.parse(readFileSync(join(dir, `${product}-${VERSION}.cdx.json`), 'utf8')) as Bom;
    const sums = readFileSync(join(dir, 'SHA256SUMS'), 'utf8');
    for (const [product, must] of [['latchkey-server', ['better-sqlite3', 'fastify', 'kysely', 'pg', 'ws']], ['latchkey', ['@peculiar/x509', 'keytar', 'pkcs11js', '@napi-rs/keyring', 'ws']]] as const) {
      const bom = load(product);
      assert.equal(bom.bomFormat, 'CycloneDX');
      assert.equal(bom.specVersion, '1.5');
      assert.deepEqual(bom.metadata.component, { type: 'application', 'bom-ref': `latchkey-product:${product}@${VERSION}`, name: product, version: VERSION });
      // It names its artefacts by the hashes in SHA256SUMS.
      const described = bom.metadata.properties.map((p) => p.value);
      assert.equal(described.length, 2, described.join(', '));
      for (const d of described) {
        const [file, hash] = d.split(' sha256:');
        assert.ok(sums.includes(`${hash}  ${file}\n`), `${file} with ${hash} is in SHA256SUMS`);
      }
      const node = bom.components.find((c) => c.name === 'node')!;
      assert.equal(node.version, process.versions.node);
      for (const name of must) {
        const c = bom.components.find((x) => x.name === name);
        assert.ok(c, `${product} lists ${name}`);
        assert.ok(lockVersions(name).includes(c.version), `${name}@${c.version} is a locked version (${lockVersions(name).join(', ')})`);
        const integrity = lockIntegrity(name, c.version)!;
        assert.equal(c.hashes?.[0]?.alg, 'SHA-512');
        assert.equal(Buffer.from(c.hashes[0]!.content, 'hex').toString('base64'), integrity.replace(/^sha512-/, ''), `${name}: the lockfile's integrity`);
        assert.equal(c.purl, `pkg:npm/${name.replace(/^@/, '%40')}@${c.version}`);
      }
      for (const dev of ['typescript', 'eslint', 'typescript-eslint', 'esbuild', 'postject', 'fast-check', 'oidc-provider', 'playwright-core']) {
        assert.ok(!bom.components.some((c) => c.name === dev), `${product} does not list the devDependency ${dev}`);
      }
      assert.ok(!bom.components.some((c) => c.name.startsWith('@types/')), 'no @types/*');
    }
    const sqlite = load('latchkey-server').components.find((c) => c.name === 'better-sqlite3')!;
    assert.deepEqual(sqlite.licenses, [{ license: { id: 'MIT' } }]);
    assert.ok(!load('latchkey-server').components.some((c) => c.name === 'keytar'), 'the agent\'s dependencies are not the server\'s');
  });
});
