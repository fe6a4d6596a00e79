/**
 * Issue 15, first part: the enrollment token without putting it on the
 * command line. `latchkey enroll --token-file F` and `LATCHKEY_TOKEN`, as an
 * MDM or a script writes them (CRLF from Windows, a trailing newline), enroll
 * against a real server; a token file others can read, two ways at once, or a
 * token with a line break inside are usage errors (exit 2) that never print
 * the token.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AGENT_CLI, cli, initServer, run, startServer, tempDir } from './support/processes.js';

describe('latchkey enroll: the token from a file or the environment (issue 15)', () => {
  test('RFC 9110 §5.5: --token-file with CRLF, LATCHKEY_TOKEN with a newline and --token with CRLF all enroll; bad inputs are refused without echoing the token', { timeout: 180_000 }, async (t) => {
    const { dataDir, port, fingerprint } = await initServer(t);
    const s = await startServer(t, dataDir, port);
    const dir = tempDir(t, 'latchkey-token-input-');
    const newToken = async (): Promise<string> => {
      const r = await cli(['token', 'create', '--data-dir', dataDir, '--json']);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { token: string }).token;
    };
    const enroll = (name: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
      run(process.execPath, [AGENT_CLI, '--state-dir', join(dir, name), 'enroll', '--server', s.url, '--ca-fingerprint', fingerprint, '--keystore', 'file', ...args], {
        env: { ...process.env, LATCHKEY_TOKEN: '', ...env },
      });

    const fileToken = await newToken();
    const tokenFile = join(dir, 'enroll-token');
    writeFileSync(tokenFile, `${fileToken}\r\n`, { mode: 0o600 });
    const viaFile = await enroll('file', ['--token-file', tokenFile]);
    assert.equal(viaFile.code, 0, viaFile.stderr);

    const viaEnv = await enroll('env', [], { LATCHKEY_TOKEN: `${await newToken()}\n` });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);

    const viaFlag = await enroll('flag', ['--token', `${await newToken()}\r\n`]);
    assert.equal(viaFlag.code, 0, viaFlag.stderr);

    const devices = await cli(['devices', 'list', '--data-dir', dataDir, '--json']);
    assert.equal((JSON.parse(devices.stdout) as { items: unknown[] }).items.length, 3);

    const spare = await newToken();
    const openFile = join(dir, 'open-token');
    writeFileSync(openFile, `${spare}\n`, { mode: 0o644 });
    const open = await enroll('open', ['--token-file', openFile]);
    assert.equal(open.code, 2);
    assert.match(open.stderr, /--token-file .*open-token can be read by other users \(mode 644\); run chmod 600/);

    const both = await enroll('both', ['--token-file', tokenFile, '--token', spare]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give the enrollment token once: --token-file F or --token T/);

    const twoLines = await enroll('two-lines', [], { LATCHKEY_TOKEN: `${spare}\r\nsomething-else` });
    assert.equal(twoLines.code, 2);
    assert.match(twoLines.stderr, /LATCHKEY_TOKEN must hold the enrollment token alone on one line/);

    const none = await enroll('none', []);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /either --token-file F \(or --token T, or LATCHKEY_TOKEN\) or --sso/);

    for (const r of [open, both, twoLines, none]) assert.ok(!r.stderr.includes(spare) && !r.stdout.includes(spare), 'the token is never printed');
    // The refused attempts used nothing: the spare token still enrolls.
    const spareUse = await enroll('spare', ['--token', spare]);
    assert.equal(spareUse.code, 0, spareUse.stderr);
  });
});
