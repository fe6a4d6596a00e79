// CycloneDX 1.5 SBOMs from pnpm-lock.yaml: the production dependency closure
// of a workspace package (dependencies and optionalDependencies, through
// workspace links, never devDependencies), each with its locked version, purl,
// the lockfile's SHA-512 integrity and the license its installed package.json
// declares; plus the Node.js runtime the artefact carries.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The os/cpu pairs artefacts are built for (agent/scripts/package.mjs TARGETS,
 * glibc on Linux): an optional platform package (a prebuilt addon) for any
 * other platform is in the lockfile but in no artefact.
 */
const SHIPPED = [['linux', 'x64'], ['linux', 'arm64'], ['win32', 'x64'], ['darwin', 'x64'], ['darwin', 'arm64']];

const unquote = (s) => s.trim().replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1');

/**
 * The subset of pnpm's lockfile v9 the SBOM needs, read line by line (the
 * format is YAML written by pnpm with a fixed two-space layout):
 * importers.<dir>.{dependencies,optionalDependencies,devDependencies}.<name>.version,
 * packages.<name@version>.{resolution.integrity,os,cpu,libc},
 * snapshots.<name@version(peers)>.{dependencies,optionalDependencies}.<name>: <version>.
 */
export function parseLockfile(text) {
  const lines = text.split('\n');
  if (!/^lockfileVersion: '9\.\d+'/.test(lines[0] ?? '')) throw new Error(`pnpm-lock.yaml: expected lockfileVersion 9, found ${JSON.stringify(lines[0])}; update scripts/package/sbom.mjs for the new format`);
  const importers = {};
  const packages = {};
  const snapshots = {};
  let section;
  let key;
  let group;
  let dep;
  for (const raw of lines) {
    if (!raw.trim() || raw.trim().startsWith('#')) continue;
    const indent = raw.length - raw.trimStart().length;
    const line = raw.trim();
    if (indent === 0) {
      section = line.replace(/:.*$/, '');
      continue;
    }
    if (indent === 2) {
      key = unquote(line.replace(/:\s*(\{\})?$/, ''));
      group = undefined;
      if (section === 'importers') importers[key] = { dependencies: {}, optionalDependencies: {}, devDependencies: {} };
      if (section === 'packages') packages[key] = {};
      if (section === 'snapshots') snapshots[key] = { dependencies: {}, optionalDependencies: {} };
      continue;
    }
    if (section === 'importers' && importers[key]) {
      if (indent === 4) group = line.replace(/:$/, '');
      else if (indent === 6) dep = unquote(line.replace(/:$/, ''));
      else if (indent === 8 && line.startsWith('version:') && importers[key][group]) importers[key][group][dep] = unquote(line.slice('version:'.length));
    } else if (section === 'packages' && packages[key] && indent === 4) {
      const integrity = /integrity: ([^,}\s]+)/.exec(line);
      if (line.startsWith('resolution:') && integrity) packages[key].integrity = integrity[1];
      const list = /^(os|cpu|libc): \[(.*)\]$/.exec(line);
      if (list) packages[key][list[1]] = list[2].split(',').map(unquote);
    } else if (section === 'snapshots' && snapshots[key]) {
      if (indent === 4) group = line.replace(/:$/, '');
      else if (indent === 6 && snapshots[key][group]) {
        const m = /^(.+?):\s+(.+)$/.exec(line);
        if (m) snapshots[key][group][unquote(m[1])] = unquote(m[2]);
      }
    }
  }
  return { importers, packages, snapshots };
}

/** `name@1.2.3(peer@4)` → { name, version: '1.2.3', key: 'name@1.2.3' }. */
function splitKey(snapshotKey) {
  const base = snapshotKey.replace(/\(.*$/, '');
  const at = base.lastIndexOf('@');
  return { name: base.slice(0, at), version: base.slice(at + 1), key: base };
}

const shipped = (p) => SHIPPED.some(([os, cpu]) => (!p.os || p.os.includes(os)) && (!p.cpu || p.cpu.includes(cpu))) && (!p.libc || p.libc.includes('glibc'));

/**
 * The production closure of the workspace package in `importer` (e.g. 'server'):
 * third-party packages (name, version, integrity) and the workspace packages it links.
 */
export function productionClosure(lock, importer) {
  const workspace = new Set();
  const found = new Map();
  const queue = [];
  const visitImporter = (dir) => {
    if (workspace.has(dir)) return;
    const imp = lock.importers[dir];
    if (!imp) throw new Error(`pnpm-lock.yaml has no importer ${dir}`);
    workspace.add(dir);
    for (const [name, version] of Object.entries({ ...imp.dependencies, ...imp.optionalDependencies })) {
      if (version.startsWith('link:')) visitImporter(posix.normalize(posix.join(dir === '.' ? '' : dir, version.slice('link:'.length))));
      else queue.push(`${name}@${version}`);
    }
  };
  visitImporter(importer);
  while (queue.length) {
    const snap = queue.pop();
    if (found.has(snap)) continue;
    const { name, version, key } = splitKey(snap);
    const pkg = lock.packages[key];
    if (!pkg) throw new Error(`pnpm-lock.yaml: ${snap} is referenced but has no packages entry`);
    if (!shipped(pkg)) continue;
    found.set(snap, { name, version, integrity: pkg.integrity });
    const s = lock.snapshots[snap] ?? { dependencies: {}, optionalDependencies: {} };
    for (const [n, v] of Object.entries({ ...s.dependencies, ...s.optionalDependencies })) queue.push(`${n}@${v}`);
  }
  // One component per name@version (peer variants are the same files).
  const byKey = new Map();
  for (const c of found.values()) byKey.set(`${c.name}@${c.version}`, c);
  return { packages: [...byKey.values()].sort((a, b) => (a.name + a.version).localeCompare(b.name + b.version)), workspace: [...workspace].sort() };
}

/** The installed package.json of name@version in node_modules/.pnpm, if it is there. */
function installedManifest(name, version) {
  const store = join(ROOT, 'node_modules/.pnpm');
  const prefix = `${name.replace('/', '+')}@${version}`;
  for (const d of readdirSync(store)) {
    if (d !== prefix && !d.startsWith(`${prefix}_`)) continue;
    const file = join(store, d, 'node_modules', name, 'package.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  }
  return undefined;
}

function licenseOf(manifest) {
  const l = manifest?.license ?? (Array.isArray(manifest?.licenses) ? manifest.licenses.map((x) => x.type ?? x).join(' OR ') : undefined);
  if (typeof l !== 'string' || !l) return undefined;
  // A single SPDX id as `license.id`, an expression as `expression`.
  return /^[A-Za-z0-9.+-]+$/.test(l) ? { license: { id: l } } : { expression: l };
}

const purl = (name, version) => `pkg:npm/${name.startsWith('@') ? `%40${name.slice(1)}` : name}@${version}`;

function sriToHash(integrity) {
  const m = /^sha512-(.+)$/.exec(integrity ?? '');
  return m ? [{ alg: 'SHA-512', content: Buffer.from(m[1], 'base64').toString('hex') }] : [];
}

/** The components of a product, for the SBOM and for the Debian copyright file. */
export function productComponents(importer) {
  const lock = parseLockfile(readFileSync(join(ROOT, 'pnpm-lock.yaml'), 'utf8'));
  const { packages, workspace } = productionClosure(lock, importer);
  const workspaceComponents = workspace.map((dir) => JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')));
  return {
    thirdParty: packages.map((p) => {
      const manifest = installedManifest(p.name, p.version);
      return { ...p, license: licenseOf(manifest), licenseText: manifest?.license };
    }),
    workspace: workspaceComponents.map((m) => ({ name: m.name, version: m.version })),
  };
}

/**
 * A CycloneDX 1.5 JSON SBOM for `product` (`latchkey` built from agent/,
 * `latchkey-server` from server/), `version`, listing `artefacts` (file
 * name + SHA-256) as what it describes, and the Node runtime inside them.
 */
export function cyclonedx({ product, importer, version, artefacts, nodeBinary = process.execPath }) {
  const { thirdParty, workspace } = productComponents(importer);
  const nodeVersion = process.versions.node;
  const nodeSha = createHash('sha256').update(readFileSync(nodeBinary)).digest('hex');
  const components = [
    {
      type: 'platform',
      'bom-ref': `pkg:generic/nodejs@${nodeVersion}`,
      name: 'node',
      version: nodeVersion,
      description: 'the Node.js runtime shipped inside the artefacts (the binary that ran the packaging, before strip/injection)',
      purl: `pkg:generic/nodejs@${nodeVersion}`,
      hashes: [{ alg: 'SHA-256', content: nodeSha }],
      licenses: [{ license: { id: 'MIT' } }],
    },
    ...workspace.map((w) => ({ type: 'library', 'bom-ref': purl(w.name, w.version), name: w.name, version: w.version, purl: purl(w.name, w.version), description: 'workspace package of this repository' })),
    ...thirdParty.map((p) => ({
      type: 'library',
      'bom-ref': purl(p.name, p.version),
      name: p.name,
      version: p.version,
      purl: purl(p.name, p.version),
      hashes: sriToHash(p.integrity),
      ...(p.license ? { licenses: [p.license] } : {}),
    })),
  ];
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: new Date().toISOString(),
      tools: { components: [{ type: 'application', name: 'latchkey scripts/package/sbom.mjs', version }] },
      component: { type: 'application', 'bom-ref': `latchkey-product:${product}@${version}`, name: product, version },
      properties: artefacts.map((a) => ({ name: 'latchkey:artefact', value: `${a.name} sha256:${a.sha256}` })),
    },
    components,
    dependencies: [{ ref: `latchkey-product:${product}@${version}`, dependsOn: components.map((c) => c['bom-ref']) }],
  };
}
