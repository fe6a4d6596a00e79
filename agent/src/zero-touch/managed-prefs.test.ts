/**
 * macOS managed preferences for zero-touch enrollment (issue 15): the plist
 * an MDM profile for com.latchkey.agent becomes, written here by python3's
 * plistlib as macOS writes it (binary) and as XML; checked like an enroll
 * file; and which source wins when both are there.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AgentError } from '../errors.js';
import { readManagedPreferences } from './managed-prefs.js';
import { readEnrollSettings } from './zero-touch.js';

const FP = '3A:7F:' + 'AB:'.repeat(29) + 'CD';
const usage = (re: RegExp) => (e: unknown) => e instanceof AgentError && e.code === 'USAGE' && re.test(e.message);

/** Writes each `[name, pythonDictExpr, fmt]` as a plist with plistlib (one python3 process), mode 0644. */
function plists(dir: string, items: [string, string, 'XML' | 'BINARY'][]): void {
  const py = `import plistlib\n${items.map(([name, expr, fmt]) => `open(${JSON.stringify(join(dir, name))}, 'wb').write(plistlib.dumps(${expr}, fmt=plistlib.FMT_${fmt}))`).join('\n')}`;
  execFileSync('python3', ['-c', py]);
  for (const [name] of items) chmodSync(join(dir, name), 0o644);
}

describe('managed preferences (macOS MDM profile, domain com.latchkey.agent)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-managed-prefs-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const base = `{'server': 'https://latchkey.example.com:8443', 'caFingerprint': '${FP}', 'keystore': 'file', 'tokenFile': '/Library/Application Support/Latchkey/enroll-token'`;
  const secret = 'lk_enr_SECRET_IN_THE_PROFILE_0000';
  plists(dir, [
    ['binary.plist', `${base}, 'PayloadUUID': 'A1B2', 'PayloadType': 'com.latchkey.agent'}`, 'BINARY'],
    ['xml.plist', `${base}, 'pkcs11': {'module': '/usr/local/lib/libtpm2_pkcs11.dylib', 'token': 'latchkey'}, 'keystore': 'pkcs11'}`, 'XML'],
    ['relative.plist', `{**${base}}, 'tokenFile': 'enroll-token'}`, 'BINARY'],
    ['inline.plist', `{**${base}}, 'token': '${secret}'}`, 'BINARY'],
    ['number.plist', `{**${base}}, 'server': 8443}`, 'BINARY'],
    ['array.plist', `['not', 'a', 'dict']`, 'XML'],
    ['typo.plist', `{**${base}}, 'Server': 'https://x'}`, 'XML'],
  ]);

  test('binary and XML plists read as enroll settings; Payload keys ignored', () => {
    const want = { server: 'https://latchkey.example.com:8443', caFingerprint: FP, keystore: 'file', tokenFile: '/Library/Application Support/Latchkey/enroll-token' };
    assert.deepEqual(readManagedPreferences(join(dir, 'binary.plist')), want);
    assert.deepEqual(readManagedPreferences(join(dir, 'xml.plist')), { ...want, keystore: 'pkcs11', pkcs11: { module: '/usr/local/lib/libtpm2_pkcs11.dylib', token: 'latchkey' } });
    assert.equal(readManagedPreferences(join(dir, 'absent.plist')), undefined);
  });

  test('refused with the source and field named, the token never echoed', () => {
    const at = (n: string) => join(dir, n);
    assert.throws(() => readManagedPreferences(at('relative.plist')), usage(/^the managed preferences .*relative\.plist: "tokenFile" must be an absolute path/));
    assert.throws(() => readManagedPreferences(at('inline.plist')), (e) => usage(/holds the enrollment token inline/)(e) && !(e as Error).message.includes(secret));
    assert.throws(() => readManagedPreferences(at('number.plist')), usage(/"server": Expected string/));
    assert.throws(() => readManagedPreferences(at('array.plist')), usage(/must hold a dictionary/));
    assert.throws(() => readManagedPreferences(at('typo.plist')), usage(/unknown field "Server"/));
    writeFileSync(at('garbage.plist'), 'bplist00 not really', { mode: 0o644 });
    assert.throws(() => readManagedPreferences(at('garbage.plist')), usage(/is not a property list the agent can read \(binary plist .*\); check the com\.latchkey\.agent configuration profile/));
    chmodSync(at('binary.plist'), 0o666);
    try {
      assert.throws(() => readManagedPreferences(at('binary.plist')), usage(/can be changed by other users \(mode 666\)/));
    } finally {
      chmodSync(at('binary.plist'), 0o644);
    }
  });

  test('precedence: the managed preferences win over the default enroll file (logged); without them the enroll file; a broken profile is an error, not a fallback', () => {
    const enrollFile = join(dir, 'enroll.json');
    writeFileSync(enrollFile, JSON.stringify({ server: 'https://from-file.example.com', caFingerprint: FP, tokenFile: 'tok' }), { mode: 0o644 });
    const lines: string[] = [];
    const both = readEnrollSettings({ enrollFile: { path: enrollFile, managedPreferences: join(dir, 'binary.plist') } }, (l) => lines.push(l));
    assert.equal(both?.f.server, 'https://latchkey.example.com:8443');
    assert.match(both!.where, /^the managed preferences .*binary\.plist$/);
    assert.match(lines.join('\n'), /the managed preferences .*binary\.plist are used; the enroll file .*enroll\.json is ignored/);
    const fileOnly = readEnrollSettings({ enrollFile: { path: enrollFile, managedPreferences: join(dir, 'absent.plist') } }, () => undefined);
    assert.equal(fileOnly?.f.server, 'https://from-file.example.com');
    assert.match(fileOnly!.where, /^the enroll file /);
    assert.throws(() => readEnrollSettings({ enrollFile: { path: enrollFile, managedPreferences: join(dir, 'typo.plist') } }, () => undefined), usage(/managed preferences .*typo\.plist: unknown field/));
    assert.equal(readEnrollSettings({ enrollFile: { path: join(dir, 'none.json'), managedPreferences: join(dir, 'none.plist') } }, () => undefined), undefined);
  });
});
