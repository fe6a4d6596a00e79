/**
 * docs/architecture.md "Layout": the agent and the server never import each other. The
 * lint rule that enforces it must actually fire; this feeds ESLint a probe
 * file as if it lived in each package and checks the error.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

const root = fileURLToPath(new URL('../../', import.meta.url));
const eslint = fileURLToPath(new URL('../../node_modules/eslint/bin/eslint.js', import.meta.url));

function lint(filename: string, source: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [eslint, '--stdin', '--stdin-filename', filename], { cwd: root, input: source, encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe('package boundaries are enforced by lint', () => {
  test('agent importing the server is an error', () => {
    const r = lint('agent/src/probe.ts', "import { x } from '@latchkey/server';\nexport const y = x;\n");
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /agent and server never import each other/);
  });

  test('server importing agent sources by path is an error', () => {
    const r = lint('server/src/probe.ts', "import { x } from '../../agent/src/keystore.js';\nexport const y = x;\n");
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /agent and server never import each other/);
  });

  test('packages/pki importing the server is an error; importing protocol from the agent is fine', () => {
    const bad = lint('packages/pki/src/probe.ts', "import { x } from '@latchkey/server';\nexport const y = x;\n");
    assert.equal(bad.code, 1, bad.out);
    const ok = lint('agent/src/probe.ts', "import { PROTOCOL_VERSION } from '@latchkey/protocol';\nexport const y = PROTOCOL_VERSION;\n");
    assert.equal(ok.code, 0, ok.out);
  });
});
