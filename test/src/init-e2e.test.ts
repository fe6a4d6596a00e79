import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cli, freshPgDatabase, mustRun, requireTools, tempDir } from './support/processes.js';

describe('latchkey-server init against PostgreSQL', () => {
  test('a database that does not exist: exit 1, nothing written, the createdb line to run; after running it, init works', { timeout: 60_000 }, async (t) => {
    if (!requireTools(t, 'createdb')) return;
    // A reachable server (skipped, or failed under LATCHKEY_REQUIRE_ALL, without one) and a name on it that does not exist.
    const existing = await freshPgDatabase(t);
    if (!existing) return;
    const u = new URL(existing);
    u.pathname = `${u.pathname}_missing`;
    const dataDir = join(tempDir(t), 'data');
    const args = ['init', '--data-dir', dataDir, '--org', 'Example Corp', '--url', 'https://127.0.0.1:8443', '--database-url', u.toString()];
    const r = await cli(args);
    assert.equal(r.code, 1, r.stderr);
    const name = u.pathname.slice(1);
    assert.match(r.stderr, new RegExp(`database of --database-url .*${name} does not exist`));
    assert.match(r.stderr, new RegExp(`nothing was written to ${dataDir}`));
    assert.equal(existsSync(dataDir), false, 'no half-made data dir');
    // The line the message gives, run as printed.
    const line = /`(createdb [^`]+)`/.exec(r.stderr)?.[1];
    assert.ok(line, r.stderr);
    assert.equal(line, `createdb -h ${u.hostname}${u.port ? ` -p ${u.port}` : ''} -U ${u.username} ${name}`);
    const [cmd, ...rest] = line.split(' ');
    await mustRun(cmd!, rest);
    t.after(() => mustRun('psql', ['-h', u.hostname, ...(u.port ? ['-p', u.port] : []), '-U', u.username, '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]).catch(() => undefined));
    const again = await cli(args);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(existsSync(join(dataDir, 'config.json')));
  });
});
