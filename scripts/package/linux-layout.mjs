// What the Linux packages install, shared by the .deb and .rpm builders: the
// file trees (staged once per run), the systemd units and the install and
// removal steps. Layout and reasons: docs/architecture.md "Packaging".
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { stageServer } from './server-bundle.mjs';
import { productComponents } from './sbom.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const AGENT = {
  name: 'latchkey',
  importer: 'agent',
  summary: 'device agent of Latchkey: a short-lived mTLS client certificate, kept fresh',
  description: [
    'The Latchkey agent enrolls this device with a Latchkey server and keeps its',
    'client certificate fresh. The latchkey service (latchkey run) enrolls by',
    'itself from /etc/latchkey/enroll.json, dropped by an MDM or a configuration',
    'management tool. The program is a single executable with Node.js inside.',
  ],
  stateDir: '/var/lib/latchkey',
  configDir: '/etc/latchkey',
  unit: 'latchkey.service',
};

export const SERVER = {
  name: 'latchkey-server',
  importer: 'server',
  summary: 'enrollment server and issuing CA of Latchkey, for device mTLS',
  description: [
    'The Latchkey server enrolls devices (EST), issues and revokes their',
    'client certificates (CRL, OCSP), runs the admin API and web console and',
    'the agents\' control channel. It ships its own Node.js runtime under',
    '/usr/lib/latchkey-server.',
  ],
  user: 'latchkey',
  dataDir: '/var/lib/latchkey-server',
  configDir: '/etc/latchkey-server',
  envFile: '/etc/latchkey-server/latchkey-server.env',
  libDir: '/usr/lib/latchkey-server',
  unit: 'latchkey-server.service',
};

const PACKAGE_HEADER = '# Installed by the latchkey package. Change it with `systemctl edit latchkey.service`, not here.';

/** The agent's system unit: the one `latchkey service install` writes (agent/src/service/service-files.ts). */
export async function agentUnit() {
  const { systemdUnit } = await import(pathToFileURL(join(ROOT, 'agent/dist/service/service-files.js')).href);
  const text = systemdUnit({ command: ['/usr/bin/latchkey'], stateDir: AGENT.stateDir, scope: 'system' });
  const [first, ...rest] = text.split('\n');
  if (!first.startsWith('# Written by `latchkey service install`')) throw new Error(`systemdUnit() no longer starts with its "Written by" comment (${first}); update scripts/package/linux-layout.mjs`);
  return [PACKAGE_HEADER, ...rest].join('\n');
}

/**
 * The server's unit: systemd.exec(5) sandboxing. The server listens on a
 * port above 1024 by default (8443); CAP_NET_BIND_SERVICE is the one
 * capability it may need, for 443: given only as an ambient capability that an
 * admin turns on with a drop-in (see the comment in the unit).
 */
export function serverUnit() {
  return `# Installed by the latchkey-server package. Change it with \`systemctl edit latchkey-server.service\`, not here.
[Unit]
Description=Latchkey enrollment server and issuing CA
Documentation=man:latchkey-server(8)
Wants=network-online.target
After=network-online.target
# latchkey-server init makes the data dir; until then there is nothing to start.
ConditionPathExists=${SERVER.dataDir}/config.json

[Service]
Type=simple
User=${SERVER.user}
Group=${SERVER.user}
EnvironmentFile=-${SERVER.envFile}
ExecStart=/usr/bin/latchkey-server start --data-dir ${SERVER.dataDir}
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
UMask=0077
# One file descriptor per agent on the control channel: the server sizes its limits from this.
LimitNOFILE=65536
NoNewPrivileges=yes
# To listen on a port below 1024, add with \`systemctl edit\`:
#   AmbientCapabilities=CAP_NET_BIND_SERVICE
#   CapabilityBoundingSet=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ReadWritePaths=${SERVER.dataDir}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
# Not set on purpose: MemoryDenyWriteExecute= breaks the V8 JIT.

[Install]
WantedBy=multi-user.target
`;
}

const SERVER_ENV = `# Environment of latchkey-server.service (systemd EnvironmentFile=).
# Settings live in ${SERVER.dataDir}/config.json (written by
# \`latchkey-server init\`); these override it. Uncomment to use.
#LATCHKEY_LISTEN=0.0.0.0:8443
#LATCHKEY_LOG_LEVEL=info
#LATCHKEY_DATABASE_URL=postgres://maintainers@latchkey.invalid/latchkey
# The CA key passphrase, if it is not in the data dir (see README "Run the server"):
#LATCHKEY_CA_PASSPHRASE=
`;

const AGENT_README = `The Latchkey agent reads its enroll file from this directory:

  /etc/latchkey/enroll.json   {"server": "https://…", "caFingerprint": "…", "tokenFile": "token"}
  /etc/latchkey/token         the enrollment token, mode 0600, owned by root

then enable the service:  systemctl enable --now latchkey.service
(the package does it when it finds enroll.json at install time).
`;

function man(name, section, summary, body) {
  const date = new Date(0).toISOString().slice(0, 10);
  return gzipSync(Buffer.from(`.TH ${name.toUpperCase().replace(/-/g, '\\-')} ${section} "${date}" "Latchkey" "Latchkey"
.SH NAME
${name.replace(/-/g, '\\-')} \\- ${summary}
.SH SYNOPSIS
.B ${name.replace(/-/g, '\\-')}
.I command
.RI [ options ]
.SH DESCRIPTION
${body}
.PP
Every command takes
.BR \\-\\-help ;
.B ${name.replace(/-/g, '\\-')} \\-\\-help
lists them.
`), { level: 9, mtime: 0 });
}

const AGENT_MAN = man('latchkey', 1, 'Latchkey device agent', `.B latchkey
enrolls this device with a Latchkey server and keeps its mTLS client certificate fresh.
.B latchkey run
is the service (latchkey.service); it enrolls by itself from
.I /etc/latchkey/enroll.json
when the device has no identity yet. State:
.IR /var/lib/latchkey .`);

const SERVER_MAN = man('latchkey-server', 8, 'Latchkey enrollment server and issuing CA', `.B latchkey-server init \\-\\-data\\-dir /var/lib/latchkey\\-server
makes the CA, the server certificate, config.json and the database (run it as the
.B latchkey
user);
.B latchkey-server start
runs the server (latchkey-server.service). Admin commands (tokens, devices, groups) reach the running server.
The data dir holds the CA keys: back it up. Removing the package, even with purge, keeps it.`);

function copyright(product) {
  const { thirdParty } = productComponents(product.importer);
  const stanzas = thirdParty
    .filter((p) => p.licenseText)
    .map((p) => `Files: ${product === SERVER ? SERVER.libDir + '/server/dist/latchkey-server.cjs' : '/usr/bin/latchkey'} (bundled ${p.name} ${p.version})\nCopyright: the authors of ${p.name}\nLicense: ${p.licenseText}`);
  return `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: latchkey
Comment: The software bill of materials (CycloneDX) published beside this
 package lists every bundled component with its version, hash and license.

Files: *
Copyright: 2026 the Latchkey authors
License: LicenseRef-Latchkey
 The Latchkey project has not published a license yet; until it does, the
 terms are those of the source repository this package was built from.

Files: ${product === SERVER ? `${SERVER.libDir}/node` : '/usr/bin/latchkey'} (the Node.js runtime)
Copyright: Node.js contributors and others
License: Expat

${stanzas.join('\n\n')}
`.replace(/\n{3,}/g, '\n\n');
}

/** Only tags that are true and cannot be fixed here, each with why. */
function lintianOverrides(pkg, node) {
  const at = node.slice(1);
  return `# ${node} is the official Node.js binary (the one that ran the packaging${pkg === 'latchkey' ? ', with the agent injected as a single executable application' : ''}).
# Node links zlib statically, with its own patches; it cannot use Debian's libz.
${pkg}: embedded-library zlib [${at}]
# The official Node.js x64 binary is built without -pie; rebuilding Node is out of scope.
${pkg}: hardening-no-pie [${at}]
# Built from the Latchkey repository, not uploaded to Debian: there is no ITP bug to close.
${pkg}: initial-upload-closes-no-bugs [usr/share/doc/${pkg}/changelog.Debian.gz:1]
`;
}

function changelog(pkg, version) {
  return gzipSync(Buffer.from(`${pkg} (${version}) unstable; urgency=medium

  * Package built from the Latchkey repository (scripts/package).

 -- Latchkey maintainers <maintainers@latchkey.invalid>  Thu, 01 Jan 2026 00:00:00 +0000
`), { level: 9, mtime: 0 });
}

/**
 * Maintainer scripts (Debian policy ch. 6; the rpm scriptlets do the same
 * with rpm's arguments, see rpm.mjs). systemctl only when systemd runs
 * ([ -d /run/systemd/system ], sd_booted(3)): in a container or a chroot
 * there is no manager to talk to.
 */
export const DEB_SCRIPTS = {
  latchkey: {
    postinst: `#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
	# Zero-touch: enable and start only when an MDM has dropped the enroll file.
	if [ -f ${AGENT.configDir}/enroll.json ]; then
		deb-systemd-helper enable ${AGENT.unit} >/dev/null || true
		deb-systemd-invoke restart ${AGENT.unit} >/dev/null || true
	fi
fi
`,
    prerm: `#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	deb-systemd-invoke stop ${AGENT.unit} >/dev/null || true
fi
`,
    postrm: `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge ${AGENT.unit} >/dev/null || true
	fi
	# The enroll file, its token and this device's identity (keys, certificate):
	# a purged device enrolls again as a new one.
	rm -rf ${AGENT.configDir} ${AGENT.stateDir}
fi
`,
  },
  'latchkey-server': {
    postinst: `#!/bin/sh
set -e
if [ "$1" = configure ]; then
	if ! getent passwd ${SERVER.user} >/dev/null; then
		adduser --system --group --quiet --home ${SERVER.dataDir} --no-create-home --gecos "Latchkey server" ${SERVER.user}
	fi
	if [ ! -d ${SERVER.dataDir} ]; then
		install -d -m 0700 -o ${SERVER.user} -g ${SERVER.user} ${SERVER.dataDir}
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -f ${SERVER.dataDir}/config.json ]; then
			deb-systemd-invoke try-restart ${SERVER.unit} >/dev/null || true
		fi
	fi
	if [ ! -f ${SERVER.dataDir}/config.json ]; then
		echo "latchkey-server: make the CA and config, then start the service:"
		echo "  runuser -u ${SERVER.user} -- latchkey-server init --data-dir ${SERVER.dataDir} --org ORG --url https://HOST:8443"
		echo "  systemctl enable --now ${SERVER.unit}"
	fi
fi
`,
    prerm: `#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	deb-systemd-invoke stop ${SERVER.unit} >/dev/null || true
fi
`,
    postrm: `#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge ${SERVER.unit} >/dev/null || true
	fi
	rmdir ${SERVER.configDir} 2>/dev/null || true
	if [ -d ${SERVER.dataDir} ]; then
		echo "latchkey-server: kept ${SERVER.dataDir}: it holds the CA's keys and the database."
		echo "  Remove it yourself once you no longer need them: rm -rf ${SERVER.dataDir}"
	fi
	echo "latchkey-server: kept the system user ${SERVER.user} (files it owns may remain); remove it with: deluser --system ${SERVER.user}"
fi
`,
  },
};

/**
 * Stages both products' file trees under `work` once per process, for
 * unit directory `unitDir` (/lib/systemd/system for Debian 12, whose lintian
 * wants units there; /usr/lib/systemd/system for rpm). Returns, per product,
 * the staged root and its entries: { path, mode, dir? } with absolute paths.
 */
export async function stageLinux({ work, version, debVersion, unitDir, agentBinary, log, flavor }) {
  const out = {};
  const root = (name) => join(work, `${flavor}-${name}`);
  const put = (entries, r, path, { src, content, mode }) => {
    const file = join(r, path);
    mkdirSync(dirname(file), { recursive: true });
    if (src) copyFileSync(src, file);
    else writeFileSync(file, content);
    chmodSync(file, mode);
    entries.push({ path, mode });
  };

  // latchkey
  {
    const r = root(AGENT.name);
    rmSync(r, { recursive: true, force: true });
    const e = [];
    put(e, r, '/usr/bin/latchkey', { src: await agentBinary('linux-x64'), mode: 0o755 });
    put(e, r, `${unitDir}/${AGENT.unit}`, { content: await agentUnit(), mode: 0o644 });
    put(e, r, `${AGENT.configDir}/README`, { content: AGENT_README, mode: 0o644 });
    put(e, r, '/usr/share/man/man1/latchkey.1.gz', { content: AGENT_MAN, mode: 0o644 });
    if (flavor === 'deb') {
      put(e, r, '/usr/share/doc/latchkey/copyright', { content: copyright(AGENT), mode: 0o644 });
      put(e, r, '/usr/share/doc/latchkey/changelog.Debian.gz', { content: changelog(AGENT.name, debVersion), mode: 0o644 });
    }
    if (flavor === 'deb') put(e, r, '/usr/share/lintian/overrides/latchkey', { content: lintianOverrides('latchkey', '/usr/bin/latchkey'), mode: 0o644 });
    out[AGENT.name] = { root: r, entries: e, conffiles: [`${AGENT.configDir}/README`] };
  }

  // latchkey-server
  {
    const r = root(SERVER.name);
    rmSync(r, { recursive: true, force: true });
    const e = [];
    mkdirSync(join(r, SERVER.libDir), { recursive: true });
    await stageServer(join(r, SERVER.libDir), { log });
    put(e, r, '/usr/bin/latchkey-server', {
      content: `#!/bin/sh\n# latchkey-server: the server bundle on the Node.js runtime shipped with it.\nexec ${SERVER.libDir}/node ${SERVER.libDir}/server/dist/latchkey-server.cjs "$@"\n`,
      mode: 0o755,
    });
    put(e, r, `${unitDir}/${SERVER.unit}`, { content: serverUnit(), mode: 0o644 });
    put(e, r, SERVER.envFile, { content: SERVER_ENV, mode: 0o644 });
    put(e, r, '/usr/share/man/man8/latchkey-server.8.gz', { content: SERVER_MAN, mode: 0o644 });
    if (flavor === 'deb') {
      put(e, r, '/usr/share/doc/latchkey-server/copyright', { content: copyright(SERVER), mode: 0o644 });
      put(e, r, '/usr/share/doc/latchkey-server/changelog.Debian.gz', { content: changelog(SERVER.name, debVersion), mode: 0o644 });
    }
    if (flavor === 'deb') put(e, r, '/usr/share/lintian/overrides/latchkey-server', { content: lintianOverrides('latchkey-server', `${SERVER.libDir}/node`), mode: 0o644 });
    out[SERVER.name] = { root: r, entries: e, conffiles: [SERVER.envFile] };
  }
  void version;
  return out;
}
