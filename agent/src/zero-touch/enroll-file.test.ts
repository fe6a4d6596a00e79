/**
 * The enroll file of zero-touch enrollment (issue 15): closed, bounded,
 * the token by reference only, errors that name the field.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AgentError } from '../errors.js';
import { MAX_ENROLL_FILE_BYTES, defaultEnrollFile, parseEnrollFile, readEnrollFile } from './enroll-file.js';

const FP = '3A:7F:' + 'AB:'.repeat(29) + 'CD';
const ok = { server: 'https://latchkey.example.com:8443', caFingerprint: FP, tokenFile: '/etc/latchkey/enroll-token' };
const usage = (re: RegExp) => (e: unknown) => e instanceof AgentError && e.code === 'USAGE' && e.exitCode === 2 && re.test(e.message);
const P = '/etc/latchkey/enroll.json';

describe('enroll file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-enroll-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the smallest file, and every optional field', () => {
    assert.deepEqual(parseEnrollFile(ok, P), ok);
    const full = { ...ok, keystore: 'pkcs11', pkcs11: { module: '/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so', token: 'latchkey' }, attest: 'tpm' };
    assert.deepEqual(parseEnrollFile(full, P), full);
    assert.equal(parseEnrollFile({ ...ok, keystore: 'file', caFingerprint: FP.replace(/:/g, '').toLowerCase() }, P).keystore, 'file');
  });

  test('a relative tokenFile is next to the enroll file', () => {
    assert.equal(parseEnrollFile({ ...ok, tokenFile: 'enroll-token' }, P).tokenFile, '/etc/latchkey/enroll-token');
  });

  test('the token inline is refused, pointing at tokenFile; the message never holds the token', () => {
    const secret = 'lk_enr_SECRETSECRET';
    assert.throws(() => parseEnrollFile({ ...ok, token: secret }, P), (e) => usage(/enrollment token inline \("token"\); .*"tokenFile"/)(e) && !(e as Error).message.includes(secret));
  });

  test('unknown and missing fields, wrong types and values are named', () => {
    assert.throws(() => parseEnrollFile({ ...ok, sever: 'x' }, P), usage(/unknown field "sever"; it may hold server, caFingerprint, keystore, pkcs11, attest, tokenFile/));
    assert.throws(() => parseEnrollFile({ server: ok.server, caFingerprint: FP }, P), usage(/"tokenFile" is missing/));
    assert.throws(() => parseEnrollFile({ ...ok, server: 'http://latchkey.example.com' }, P), usage(/"server": Expected string to match '\^https/));
    assert.throws(() => parseEnrollFile({ ...ok, keystore: 'tpm' }, P), usage(/"keystore"/));
    assert.throws(() => parseEnrollFile({ ...ok, caFingerprint: 'zz'.repeat(32) }, P), usage(/"caFingerprint" is not a SHA-256 fingerprint/));
    assert.throws(() => parseEnrollFile({ ...ok, tokenFile: 7 }, P), usage(/"tokenFile": .*string/));
    assert.throws(() => parseEnrollFile({ ...ok, keystore: 'pkcs11' }, P), usage(/needs "pkcs11"/));
    assert.throws(() => parseEnrollFile({ ...ok, pkcs11: { module: '/m.so' } }, P), usage(/"pkcs11" goes with "keystore": "pkcs11"/));
    assert.throws(() => parseEnrollFile({ ...ok, keystore: 'pkcs11', pkcs11: { module: '/m.so', pin: '1234' } }, P), (e) => usage(/"pkcs11\.pin": Unexpected property$/)(e));
    assert.throws(() => parseEnrollFile({ ...ok, attest: 'tpm' }, P), usage(/"attest": "tpm" needs "keystore": "pkcs11"/));
    assert.throws(() => parseEnrollFile([ok], P), usage(/must hold a JSON object/));
  });

  test('bounds: field lengths, the file size', () => {
    assert.throws(() => parseEnrollFile({ ...ok, server: `https://${'a'.repeat(3000)}` }, P), usage(/"server"/));
    assert.throws(() => parseEnrollFile({ ...ok, tokenFile: '/'.repeat(5000) }, P), usage(/"tokenFile"/));
    const big = join(dir, 'big.json');
    writeFileSync(big, JSON.stringify({ ...ok, pad: 'x'.repeat(MAX_ENROLL_FILE_BYTES) }), { mode: 0o644 });
    assert.throws(() => readEnrollFile(big), usage(/bytes; an enroll file is at most 65536/));
  });

  test('reading: none is undefined; bad JSON, a directory, a file others can write are refused', () => {
    assert.equal(readEnrollFile(join(dir, 'absent.json')), undefined);
    const good = join(dir, 'enroll.json');
    writeFileSync(good, `${JSON.stringify({ ...ok, tokenFile: 'tok' })}\r\n`, { mode: 0o644 });
    assert.deepEqual(readEnrollFile(good), { ...ok, tokenFile: join(dir, 'tok') });
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "server": ', { mode: 0o644 });
    assert.throws(() => readEnrollFile(broken), usage(/broken\.json: is not valid JSON/));
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    assert.throws(() => readEnrollFile(sub), usage(/is not a file/));
    if (process.platform !== 'win32') {
      chmodSync(good, 0o666);
      assert.throws(() => readEnrollFile(good), usage(/can be changed by other users \(mode 666\); run chmod 644/));
    }
  });

  test('default paths per platform', () => {
    assert.equal(defaultEnrollFile('linux', {}), '/etc/latchkey/enroll.json');
    assert.equal(defaultEnrollFile('darwin', {}), '/Library/Application Support/Latchkey/enroll.json');
    assert.equal(defaultEnrollFile('win32', { ProgramData: 'C:\\ProgramData' }), join('C:\\ProgramData', 'Latchkey', 'enroll.json'));
  });
});
