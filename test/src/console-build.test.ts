/**
 * The admin console's build (scripts/build-console.mjs, issue 13): the shell
 * and hashed assets the server serves under its CSP (no inline script or
 * style), the 150 KB gzip budget on the JavaScript, and the lint rules that
 * keep server data out of innerHTML and TypeBox out of the bundle.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));
const script = join(root, 'scripts/build-console.mjs');
const eslint = join(root, 'node_modules/eslint/bin/eslint.js');

function build(out: string, ...args: string[]) {
  return spawnSync(process.execPath, [script, '--out', out, ...args], { cwd: root, encoding: 'utf8' });
}

describe('console build', () => {
  let dir: string;
  let html: string;
  let out: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lk-console-'));
    const r = build(join(dir, 'dist'));
    out = r.stdout + r.stderr;
    assert.equal(r.status, 0, out);
    html = readFileSync(join(dir, 'dist/index.html'), 'utf8');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('index.html references one hashed script and one hashed stylesheet that exist', () => {
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
    assert.equal(scripts.length, 1, html);
    assert.match(scripts[0]!, /^<script type="module" src="\/assets\/app-[A-Z0-9]{8}\.js">$/);
    const js = /src="\/assets\/(app-[A-Z0-9]{8}\.js)"/.exec(html)![1]!;
    const css = /<link rel="stylesheet" href="\/assets\/(app-[A-Z0-9]{8}\.css)">/.exec(html)?.[1];
    assert.ok(css, html);
    assert.ok(existsSync(join(dir, 'dist/assets', js)));
    assert.ok(existsSync(join(dir, 'dist/assets', css)));
  });

  test("CSP script-src/style-src 'self': no inline script, <style>, style= or on…= handler in index.html", () => {
    assert.doesNotMatch(html, /<script\b(?![^>]*\bsrc=)[^>]*>/, 'a script without src');
    assert.doesNotMatch(html, /<script\b[^>]*>[^<]+<\/script>/, 'a script with content');
    assert.doesNotMatch(html, /<style\b/i);
    assert.doesNotMatch(html, /\sstyle=/i);
    assert.doesNotMatch(html, /\son[a-z]+=/i);
  });

  test('the JavaScript is under 150 KB gzip, and the build prints both sizes', () => {
    const js = /src="\/assets\/(app-[A-Z0-9]{8}\.js)"/.exec(html)![1]!;
    const gz = gzipSync(readFileSync(join(dir, 'dist/assets', js))).length;
    assert.ok(gz < 150 * 1024, `${gz} bytes gzip`);
    assert.match(out, /\.js .* KB gzip \(budget 150 KB\)/);
    assert.match(out, /\.css .* KB gzip/);
  });

  test('the bundle holds no HTML parsing and no TypeBox', () => {
    const js = readFileSync(join(dir, 'dist/assets', /src="\/assets\/(app-[A-Z0-9]{8}\.js)"/.exec(html)![1]!), 'utf8');
    assert.doesNotMatch(js, /innerHTML|outerHTML|insertAdjacentHTML/);
    assert.doesNotMatch(js, /TypeBox|sinclair/i);
  });

  test('a build over the budget fails and says so', () => {
    const r = build(join(dir, 'over'), '--max-js-kb', '1');
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /over the 1 KB budget/);
  });
});

describe('console lint rules', () => {
  const lint = (source: string) => spawnSync(process.execPath, [eslint, '--stdin', '--stdin-filename', 'server/console/src/probe.ts'], { cwd: root, input: source, encoding: 'utf8' });

  test('innerHTML in the console is an error', () => {
    const r = lint("export function f(el: HTMLElement, s: string): void {\n  el.innerHTML = s;\n}\n");
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /never renders through innerHTML/);
  });

  test('a value import of @latchkey/protocol is an error, a type import is not', () => {
    const bad = lint("import { REVOKE_REASONS } from '@latchkey/protocol';\nexport const r = REVOKE_REASONS;\n");
    assert.equal(bad.status, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /import type` only/);
    const ok = lint("import type { Device } from '@latchkey/protocol';\nexport const d: Device | null = null;\n");
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    // The plain lists come from the TypeBox-free entry, as values.
    const wire = lint("import { REVOKE_REASONS } from '@latchkey/protocol/wire';\nexport const r = REVOKE_REASONS;\n");
    assert.equal(wire.status, 0, wire.stdout + wire.stderr);
  });
});
