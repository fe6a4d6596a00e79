// .rpm packages of latchkey and latchkey-server with rpmbuild from the
// staged trees (linux-layout.mjs): a generated spec whose %install copies
// prebuilt files. Scriptlets do what the .deb's maintainer scripts do, with
// rpm's arguments ($1 = number of versions left).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { AGENT, SERVER, stageLinux } from './linux-layout.mjs';

export const RPM_ARCH = 'x86_64';

function walk(dir, base = dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, base, out);
    else out.push(`/${relative(base, p)}`);
  }
  return out.sort();
}

const SCRIPTS = {
  latchkey: {
    post: `if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ -f ${AGENT.configDir}/enroll.json ]; then systemctl enable ${AGENT.unit} >/dev/null 2>&1 || :; systemctl restart ${AGENT.unit} >/dev/null 2>&1 || :; fi
fi`,
    preun: `if [ $1 -eq 0 ] && [ -d /run/systemd/system ]; then systemctl disable --now ${AGENT.unit} >/dev/null 2>&1 || :; fi`,
    postun: `if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi`,
  },
  'latchkey-server': {
    pre: `getent group ${SERVER.user} >/dev/null || groupadd --system ${SERVER.user}
getent passwd ${SERVER.user} >/dev/null || useradd --system --gid ${SERVER.user} --home-dir ${SERVER.dataDir} --no-create-home --shell /sbin/nologin --comment "Latchkey server" ${SERVER.user}
exit 0`,
    post: `if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
  if [ -f ${SERVER.dataDir}/config.json ]; then systemctl try-restart ${SERVER.unit} >/dev/null 2>&1 || :; fi
fi
if [ ! -f ${SERVER.dataDir}/config.json ]; then
  echo "latchkey-server: runuser -u ${SERVER.user} -- latchkey-server init --data-dir ${SERVER.dataDir} --org ORG --url https://HOST:8443; then systemctl enable --now ${SERVER.unit}"
fi`,
    preun: `if [ $1 -eq 0 ] && [ -d /run/systemd/system ]; then systemctl disable --now ${SERVER.unit} >/dev/null 2>&1 || :; fi`,
    postun: `if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
if [ $1 -eq 0 ] && [ -d ${SERVER.dataDir} ]; then echo "latchkey-server: kept ${SERVER.dataDir} (the CA's keys and the database) and the user ${SERVER.user}"; fi`,
  },
};

function spec({ product, version, root, conffiles }) {
  const files = walk(root);
  const lines = files.map((f) => (conffiles.includes(f) ? `%config(noreplace) ${f}` : f.endsWith('.gz') && f.includes('/man/') ? `%doc ${f}` : f));
  const dirs = product === AGENT ? [`%dir ${AGENT.configDir}`] : [`%dir ${SERVER.configDir}`, `%dir %attr(0700, ${SERVER.user}, ${SERVER.user}) ${SERVER.dataDir}`, `%dir ${SERVER.libDir}`];
  const s = SCRIPTS[product.name];
  return `Name: ${product.name}
Version: ${version}
Release: 1
Summary: ${product.summary}
License: LicenseRef-Latchkey
BuildArch: ${RPM_ARCH}
# The files are prebuilt: no strip (it would cut the agent's injected
# single-executable blob), no debuginfo, no build-id links.
%global __os_install_post %{nil}
%global debug_package %{nil}
%define _build_id_links none
# xz level 1, as the .deb (deb.mjs: -6 takes ~7x as long for ~15% less).
%define _binary_payload w1.xzdio
# Requires from the ELF files (libc, libstdc++); nothing Provided to others.
AutoProv: no
${product === SERVER ? 'Requires(pre): shadow-utils\n' : ''}
%description
${product.description.join('\n')}

%install
mkdir -p %{buildroot}
cp -a ${root}/. %{buildroot}/
${product === SERVER ? `mkdir -p %{buildroot}${SERVER.dataDir}` : ''}

%files
%defattr(-, root, root, -)
${dirs.join('\n')}
${lines.join('\n')}
${s.pre ? `\n%pre\n${s.pre}\n` : ''}
%post
${s.post}

%preun
${s.preun}

%postun
${s.postun}
`;
}

/** Builds the two .rpms into outDir; returns their paths. */
export async function build({ outDir, version, agentBinary, log }) {
  const work = join(outDir, '.work');
  const staged = await stageLinux({ work, version, debVersion: `${version}-1`, unitDir: '/usr/lib/systemd/system', agentBinary, log, flavor: 'rpm' });
  const written = [];
  for (const product of [AGENT, SERVER]) {
    const { root, conffiles } = staged[product.name];
    const top = join(work, `rpmbuild-${product.name}`);
    rmSync(top, { recursive: true, force: true });
    mkdirSync(join(top, 'SPECS'), { recursive: true });
    const specFile = join(top, 'SPECS', `${product.name}.spec`);
    writeFileSync(specFile, spec({ product, version, root, conffiles }));
    const r = spawnSync('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${top}`, '--define', `_rpmdir ${outDir}`, '--define', '_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm', '--target', RPM_ARCH, specFile], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (r.error) throw new Error(`rpmbuild: ${r.error.code === 'ENOENT' ? 'not installed (apt-get install rpm)' : r.error.message}`);
    if (r.status !== 0) throw new Error(`rpmbuild ${product.name} exited ${r.status}\n${r.stdout}${r.stderr}`);
    const rpm = join(outDir, `${product.name}-${version}-1.${RPM_ARCH}.rpm`);
    log(`${relative(process.cwd(), rpm)}: ${(statSync(rpm).size / 1024 / 1024).toFixed(1)} MiB`);
    written.push(rpm);
  }
  return written;
}
