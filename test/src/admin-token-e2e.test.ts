/**
 * Issue 12 through the real binary against a started server (real TLS):
 * `latchkey-server admin-token create|list|revoke` and `whoami`. An API token
 * for automation is named, has a role and an expiry, and its secret is alone
 * on stdout; the bootstrap token of `init` works until it is revoked, which
 * is refused while it is the last admin credential and nobody can sign in.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { AdminTokenInfo, WhoAmI } from '@latchkey/protocol';
import { cli, initServer, startServer } from './support/processes.js';

describe('admin API tokens through latchkey-server', () => {
  test('create (secret alone on stdout), whoami, list, role refused, the last admin credential kept, the bootstrap token switched off', { timeout: 120_000 }, async (t) => {
    const { dataDir, port } = await initServer(t);
    await startServer(t, dataDir, port);
    const d = ['--data-dir', dataDir];
    const remote = ['--server', `https://127.0.0.1:${port}`, '--ca-file', join(dataDir, 'root.crt.pem')];
    const as = (token: string) => ({ env: { LATCHKEY_ADMIN_TOKEN: token } });

    const made = await cli(['admin-token', 'create', '--name', 'ci-deploy', '--role', 'operator', ...d]);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^lk_adm_[A-Za-z0-9_-]{43}\n?$/, 'only the secret on stdout');
    assert.match(made.stderr, /^admin token [0-9a-f-]{36} "ci-deploy": role operator, expires \S+; shown once, store it now\n$/);
    const ci = made.stdout.trim();

    const who = await cli(['whoami', '--json', ...remote], as(ci));
    assert.equal(who.code, 0, who.stderr);
    const w = JSON.parse(who.stdout) as WhoAmI;
    assert.deepEqual({ ...w, expiresAt: typeof w.expiresAt }, { actor: 'admin:ci-deploy', role: 'operator', kind: 'token', user: null, expiresAt: 'string' });
    const human = await cli(['whoami', ...d]);
    assert.equal(human.stdout.trim(), 'admin:initial-admin (token), role admin');

    const refused = await cli(['admin-token', 'list', ...remote], as(ci));
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'latchkey-server: this action needs the admin role; the token "ci-deploy" is operator (FORBIDDEN)\n');

    const table = await cli(['admin-token', 'list', ...d]);
    assert.equal(table.code, 0, table.stderr);
    const [header, ...lines] = table.stdout.trimEnd().split('\n');
    assert.match(header!, /^ID\s+NAME\s+ROLE\s+KIND\s+USER\s+EXPIRES\s+LASTUSED\s+REVOKED$/);
    assert.equal(lines.length, 2);
    assert.match(table.stdout, /ci-deploy\s+operator\s+token\s+-\s+\S+Z\s+\S+Z\s+-/, 'its last use is shown');
    assert.match(table.stdout, /initial-admin\s+admin\s+bootstrap\s+-\s+-\s+\S+Z\s+-/);
    assert.doesNotMatch(table.stdout, /lk_adm_/);

    const list = async (opts = {}): Promise<AdminTokenInfo[]> => (JSON.parse((await cli(['admin-token', 'list', '--sessions', '--json', ...d], opts)).stdout) as { items: AdminTokenInfo[] }).items;
    const boot = (await list()).find((x) => x.kind === 'bootstrap')!;
    const last = await cli(['admin-token', 'revoke', boot.id, ...d]);
    assert.equal(last.code, 1);
    assert.match(last.stderr, /^latchkey-server: "initial-admin" is the last live credential with the admin role and no identity provider is configured: .* \(CONFLICT\)\n$/);

    const badRole = await cli(['admin-token', 'create', '--name', 'x', '--role', 'root', ...d]);
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /Allowed choices are viewer, operator, admin/);
    const noName = await cli(['admin-token', 'create', '--role', 'viewer', ...d]);
    assert.equal(noName.code, 2);
    assert.match(noName.stderr, /--name is required/);
    const tooLong = await cli(['admin-token', 'create', '--name', 'x', '--role', 'viewer', '--ttl', '400d', ...d]);
    assert.equal(tooLong.code, 1);
    assert.match(tooLong.stderr, /between 1 minute and 365 days \(BAD_REQUEST\)/);
    const dup = await cli(['admin-token', 'create', '--name', 'ci-deploy', '--role', 'viewer', ...d]);
    assert.match(dup.stderr, /an admin token named "ci-deploy" exists and is live.*\(CONFLICT\)/);

    // Another admin first; then the bootstrap token is switched off, by that admin.
    const next = (JSON.parse((await cli(['admin-token', 'create', '--name', 'ops-admin', '--role', 'admin', '--ttl', '30d', '--json', ...d])).stdout) as { token: string }).token;
    const off = await cli(['admin-token', 'revoke', boot.id, ...remote], as(next));
    assert.equal(off.code, 0, off.stderr);
    assert.equal(off.stdout.trim(), `admin token "initial-admin" (${boot.id}) revoked`);
    const dead = await cli(['whoami', ...d]);
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /the admin token "initial-admin" was revoked at \S+; .* \(UNAUTHORIZED\)\n$/);
    const audit = JSON.parse((await cli(['audit', 'list', '--action', 'admin-token.revoke', '--json', ...remote], as(next))).stdout) as { items: { actor: string; target: string }[] };
    assert.deepEqual(audit.items.map((e) => [e.actor, e.target]), [['admin:ops-admin', boot.id]]);
    const after = await list(as(next));
    assert.ok(after.find((x) => x.id === boot.id)!.revokedAt, 'listed as revoked');
  });
});
