/**
 * The Jamf Pro pieces of the README's rollout section (deploy/jamf/): the
 * example com.latchkey.agent property list is one plistlib reads and the
 * agent accepts as managed preferences (it stops only at the token file,
 * which is not on this machine); the policy script writes a 0600 token file
 * from parameter 4, replaces it on rotation, and refuses an empty one.
 * macOS and Jamf themselves are not here: the script runs under sh on Linux.
 */
import assert from 'node:assert/strict';
import { copyFileSync, chmodSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { AGENT_CLI, ROOT, requireTools, run, tempDir } from './support/processes.js';

const JAMF = join(ROOT, 'deploy/jamf');

describe('Jamf examples: deploy/jamf (issue 15)', () => {
  test('the example profile plist: plistlib reads it, the agent accepts its keys as managed preferences', { timeout: 60_000 }, async (t) => {
    if (!requireTools(t, 'python3')) return;
    const src = join(JAMF, 'com.latchkey.agent.plist');
    const py = await run('python3', ['-c', 'import plistlib, sys, json; print(json.dumps(plistlib.load(open(sys.argv[1], "rb"))))', src]);
    assert.equal(py.code, 0, py.stderr);
    assert.deepEqual(Object.keys(JSON.parse(py.stdout) as object), ['server', 'caFingerprint', 'keystore', 'tokenFile']);
    const dir = tempDir(t, 'latchkey-jamf-');
    const plist = join(dir, 'com.latchkey.agent.plist');
    copyFileSync(src, plist);
    chmodSync(plist, 0o644);
    const r = await run(process.execPath, [AGENT_CLI, '--state-dir', join(dir, 'state'), 'run'], { env: { LATCHKEY_ENROLL_FILE: '', LATCHKEY_MANAGED_PREFERENCES: plist } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /tokenFile of the managed preferences .*com\.latchkey\.agent\.plist, .*\/Library\/Application Support\/Latchkey\/enroll-token: no such file/);
  });

  test('the token script: parameter 4 becomes a 0600 token file, a new token replaces it, an empty one is refused; the token is not printed', { timeout: 60_000 }, async (t) => {
    const dir = join(tempDir(t, 'latchkey-jamf-'), 'Latchkey');
    const script = join(JAMF, 'write-enroll-token.sh');
    const env = { LATCHKEY_DIR: dir, PATH: '/usr/bin:/bin' };
    const token = 'lk_enr_JAMF_TEST_TOKEN_0123456789';
    const r = await run('sh', [script, '/', 'mac-01', 'ada', token], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(token) && !r.stderr.includes(token));
    const file = join(dir, 'enroll-token');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(file, 'utf8'), `${token}\n`);
    assert.equal(statSync(dir).mode & 0o777, 0o755);
    const rotated = await run('sh', [script, '/', 'mac-01', 'ada', `${token}-2`], { env });
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.equal(readFileSync(file, 'utf8'), `${token}-2\n`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const empty = await run('sh', [script, '/', 'mac-01', 'ada', ''], { env });
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /parameter 4 \(the enrollment token\) is empty/);
    assert.equal(readFileSync(file, 'utf8'), `${token}-2\n`, 'an empty parameter leaves the token file alone');
  });
});
