// .deb packages of latchkey and latchkey-server with dpkg-deb from the staged
// trees (linux-layout.mjs): control file, md5sums, conffiles, maintainer
// scripts; Depends computed by dpkg-shlibdeps from the ELF files.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { AGENT, DEB_SCRIPTS, SERVER, stageLinux } from './linux-layout.mjs';

export const DEB_ARCH = 'amd64';

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.code === 'ENOENT' ? `not installed (apt-get install ${cmd === 'dpkg-shlibdeps' ? 'dpkg-dev' : 'dpkg'})` : r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function walk(dir, base = dir, out = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, base, out);
    else out.push(relative(base, p));
  }
  return out.sort();
}

const isElf = (file) => {
  const b = readFileSync(file).subarray(0, 4);
  return b[0] === 0x7f && b.toString('latin1', 1, 4) === 'ELF';
};

/** dpkg-shlibdeps over the package's ELF files: the Depends they need (libc6, libstdc++6, …). */
function shlibDepends(root, files) {
  const elf = files.filter((f) => isElf(join(root, f))).map((f) => join(root, f));
  if (!elf.length) return '';
  const tmp = join(root, '..', `shlibdeps-${Date.now()}`);
  mkdirSync(join(tmp, 'debian'), { recursive: true });
  writeFileSync(join(tmp, 'debian/control'), 'Source: latchkey\n\nPackage: latchkey\nArchitecture: any\n');
  try {
    const outText = sh('dpkg-shlibdeps', ['-O', '--warnings=0', ...elf], { cwd: tmp });
    return /shlibs:Depends=(.*)/.exec(outText)?.[1]?.trim() ?? '';
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function control({ name, version, depends, installedSize, summary, description, recommends }) {
  return [
    `Package: ${name}`,
    `Version: ${version}`,
    `Architecture: ${DEB_ARCH}`,
    'Maintainer: Latchkey maintainers <maintainers@latchkey.invalid>',
    `Installed-Size: ${installedSize}`,
    ...(depends ? [`Depends: ${depends}`] : []),
    ...(recommends ? [`Recommends: ${recommends}`] : []),
    'Section: admin',
    'Priority: optional',
    `Description: ${summary}`,
    ...description.map((l) => ` ${l}`),
    '',
  ].join('\n');
}

/** Builds the two .debs into outDir; returns their paths. */
export async function build({ outDir, version, agentBinary, log }) {
  const debVersion = `${version}-1`;
  const work = join(outDir, '.work');
  const staged = await stageLinux({ work, version, debVersion, unitDir: '/lib/systemd/system', agentBinary, log, flavor: 'deb' });
  const written = [];
  for (const product of [AGENT, SERVER]) {
    const { root, conffiles } = staged[product.name];
    const files = walk(root);
    const debian = join(root, 'DEBIAN');
    rmSync(debian, { recursive: true, force: true });
    mkdirSync(debian);
    const size = Math.ceil(files.reduce((n, f) => n + statSync(join(root, f)).size, 0) / 1024);
    const shlibs = shlibDepends(root, files);
    const extra = product === SERVER ? ['adduser'] : [];
    writeFileSync(join(debian, 'control'), control({
      name: product.name,
      version: debVersion,
      depends: [shlibs, ...extra].filter(Boolean).join(', '),
      // The os keystore (keytar inside the executable) links libsecret at run time.
      recommends: product === AGENT ? 'libsecret-1-0' : undefined,
      installedSize: size,
      summary: product.summary,
      description: product.description,
    }));
    writeFileSync(join(debian, 'md5sums'), files.map((f) => `${createHash('md5').update(readFileSync(join(root, f))).digest('hex')}  ${f}\n`).join(''));
    writeFileSync(join(debian, 'conffiles'), conffiles.map((c) => `${c}\n`).join(''));
    for (const [script, text] of Object.entries(DEB_SCRIPTS[product.name])) {
      writeFileSync(join(debian, script), text);
      chmodSync(join(debian, script), 0o755);
    }
    for (const f of ['control', 'md5sums', 'conffiles']) chmodSync(join(debian, f), 0o644);
    const deb = join(outDir, `${product.name}_${debVersion}_${DEB_ARCH}.deb`);
    // --root-owner-group: every file root:root whoever builds. xz level 1: the
    // payload is mostly a Node binary; -6 takes ~7x as long for ~15% less.
    sh('dpkg-deb', ['--root-owner-group', '-Zxz', '-z1', '--build', root, deb]);
    log(`${relative(process.cwd(), deb)}: ${(statSync(deb).size / 1024 / 1024).toFixed(1)} MiB`);
    written.push(deb);
  }
  return written;
}
