// Builds the admin console (server/console) into server/console/dist:
// index.html (the shell every console URL answers) and assets/app-<hash>.js|css,
// bundled and minified by esbuild. Type checking is `tsc -b` (server/console is
// a project of the root tsconfig); this only bundles.
// Prints the gzip size of the JS and CSS and fails when the JS is over the
// budget (docs/architecture.md "Admin console (front end)").
//   node scripts/build-console.mjs [--out DIR] [--max-js-kb N]
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const consoleDir = join(root, 'server/console');
const { values } = parseArgs({ options: { out: { type: 'string' }, 'max-js-kb': { type: 'string', default: '150' } } });
const out = resolve(values.out ?? join(consoleDir, 'dist'));
const maxJsKb = Number(values['max-js-kb']);
if (!Number.isFinite(maxJsKb) || maxJsKb <= 0) {
  console.error(`build-console: --max-js-kb wants a positive number of kilobytes, not "${values['max-js-kb']}"`);
  process.exit(2);
}

// esbuild is a devDependency of the server package, which owns the console.
const esbuild = createRequire(join(root, 'server/package.json'))('esbuild');

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
const result = await esbuild.build({
  absWorkingDir: consoleDir,
  entryPoints: { app: 'src/main.ts', style: 'src/app.css' },
  entryNames: 'app-[hash]',
  outdir: join(out, 'assets'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => resolve(consoleDir, p));
const js = outputs.find((p) => p.endsWith('.js'));
const css = outputs.find((p) => p.endsWith('.css'));
if (!js || !css || outputs.length !== 2) {
  console.error(`build-console: expected one .js and one .css, esbuild wrote ${outputs.map((p) => relative(root, p)).join(', ')}`);
  process.exit(1);
}

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>Latchkey</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/${basename(css)}">
<script type="module" src="/assets/${basename(js)}"></script>
</head>
<body>
<div id="app"></div>
<noscript><p>The Latchkey console needs JavaScript. The same actions are in the command line: latchkey-server --help.</p></noscript>
</body>
</html>
`;
writeFileSync(join(out, 'index.html'), html);

const kb = (n) => (n / 1024).toFixed(1);
const size = (p) => {
  const raw = readFileSync(p);
  return { raw: raw.length, gz: gzipSync(raw, { level: 9 }).length };
};
const j = size(js);
const c = size(css);
console.log(`console: ${relative(root, out)}/index.html`);
console.log(`console: assets/${basename(js)}  ${kb(j.raw)} KB, ${kb(j.gz)} KB gzip (budget ${maxJsKb} KB)`);
console.log(`console: assets/${basename(css)}  ${kb(c.raw)} KB, ${kb(c.gz)} KB gzip`);
if (j.gz > maxJsKb * 1024) {
  console.error(`build-console: the console's JavaScript is ${kb(j.gz)} KB gzip, over the ${maxJsKb} KB budget; drop a dependency or split a page out`);
  process.exit(1);
}
