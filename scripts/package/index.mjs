#!/usr/bin/env node
// `pnpm package`: every installable artefact into dist/packages/, with a
// CycloneDX SBOM per product and SHA256SUMS over all of them.
//
// Usage: node scripts/package/index.mjs [--only deb,rpm,…] [--out-dir DIR]
//
// Each builder is a module in this folder exporting
//   async build({ outDir, version, agentBinary(target), log }) → [file paths it wrote]
// agentBinary(target) is the agent's single executable for that target
// (agent/scripts/package.mjs, built once per run). A builder whose module is
// absent is skipped with a note, unless it was asked for with --only.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cyclonedx } from './sbom.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Builder name → module in this folder. */
const BUILDERS = { deb: 'deb.mjs', rpm: 'rpm.mjs', msi: 'msi.mjs', macos: 'macos.mjs' };
/** What the SBOMs describe: product → workspace importer, and which artefacts are its (by file name). */
const PRODUCTS = [
  { product: 'latchkey-server', importer: 'server', match: (f) => /^latchkey-server[-_.]/.test(f) },
  { product: 'latchkey', importer: 'agent', match: (f) => /^latchkey[-_.]/.test(f) && !/^latchkey-server[-_.]/.test(f) },
];

const log = (s) => process.stdout.write(`package: ${s}\n`);

function parse() {
  const { values } = parseArgs({ options: { only: { type: 'string' }, 'out-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 11).map((l) => l.replace(/^\/\/ ?/, '')).join('\n') + '\n');
    process.exit(0);
  }
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  for (const b of only ?? []) if (!BUILDERS[b]) throw new Error(`unknown builder ${b} in --only; one of ${Object.keys(BUILDERS).join(', ')}`);
  return { only, outDir: resolve(values['out-dir'] ?? join(ROOT, 'dist/packages')) };
}

/** The version of every artefact: the root package.json's. */
function productVersion() {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  if (!/^\d+\.\d+\.\d+$/.test(version ?? '')) throw new Error(`package.json "version" must be MAJOR.MINOR.PATCH, got ${JSON.stringify(version)}`);
  return version;
}

const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function main() {
  const { only, outDir } = parse();
  const version = productVersion();
  if (!existsSync(join(ROOT, 'agent/dist/cli.js')) || !existsSync(join(ROOT, 'server/dist/cli.js'))) throw new Error('the workspace is not built: run `pnpm build` first');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });

  const binDir = join(outDir, '.work', 'bin');
  const binaries = new Map();
  const agentBinary = (target) => {
    if (!binaries.has(target)) {
      log(`building the agent executable for ${target}`);
      const r = spawnSync(process.execPath, [join(ROOT, 'agent/scripts/package.mjs'), '--target', target, '--out-dir', binDir, '--no-timing'], { cwd: join(ROOT, 'agent'), stdio: ['ignore', 'inherit', 'inherit'] });
      const file = join(binDir, `latchkey-${target}${target.startsWith('win') ? '.exe' : ''}`);
      if (r.status !== 0 || !existsSync(file)) throw new Error(`agent/scripts/package.mjs --target ${target} failed (exit ${r.status})`);
      binaries.set(target, file);
    }
    return Promise.resolve(binaries.get(target));
  };

  const wanted = only ?? Object.keys(BUILDERS);
  const artefacts = [];
  for (const name of wanted) {
    const module = join(ROOT, 'scripts/package', BUILDERS[name]);
    if (!existsSync(module)) {
      if (only) throw new Error(`no builder ${name}: ${relative(ROOT, module)} does not exist`);
      log(`skipping ${name}: ${relative(ROOT, module)} is not in this tree`);
      continue;
    }
    log(`${name}: building`);
    const { build } = await import(pathToFileURL(module).href);
    const files = await build({ outDir, version, agentBinary, log });
    for (const f of files) {
      if (resolve(f, '..') !== outDir) throw new Error(`builder ${name} wrote ${f} outside ${outDir}`);
      artefacts.push(basename(f));
    }
  }
  rmSync(join(outDir, '.work'), { recursive: true, force: true });

  // One SBOM per product, naming the artefacts it describes with their hashes.
  const sboms = [];
  for (const p of PRODUCTS) {
    const mine = artefacts.filter(p.match).map((name) => ({ name, sha256: sha256(join(outDir, name)) }));
    if (!mine.length) continue;
    const file = `${p.product}-${version}.cdx.json`;
    writeFileSync(join(outDir, file), `${JSON.stringify(cyclonedx({ product: p.product, importer: p.importer, version, artefacts: mine }), null, 2)}\n`);
    sboms.push(file);
  }
  const all = readdirSync(outDir).filter((f) => f !== 'SHA256SUMS' && statSync(join(outDir, f)).isFile()).sort();
  writeFileSync(join(outDir, 'SHA256SUMS'), all.map((f) => `${sha256(join(outDir, f))}  ${f}\n`).join(''));
  for (const f of all) log(`${f}  ${(statSync(join(outDir, f)).size / 1024 / 1024).toFixed(1)} MiB`);
  log(`${relative(process.cwd(), outDir) || '.'}: ${artefacts.length} packages, ${sboms.length} SBOMs, SHA256SUMS`);
}

main().catch((e) => {
  process.stderr.write(`package: ${e.message}\n`);
  process.exitCode = 1;
});
