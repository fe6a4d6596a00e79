/**
 * `latchkey enroll-file write` (issue 15): what it writes is what the
 * zero-touch reader accepts, with the token's file private from its first
 * byte, idempotent, refusing to replace other content without --force, and
 * never repeating the token in a message.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { readSecretFile } from '@latchkey/cli';
import { AgentError } from '../errors.js';
import { readEnrollFile } from './enroll-file.js';
import { type EnrollFileWriteDeps, icaclsArgs, readTokenInput, writeEnrollFiles } from './enroll-file-write.js';

const FP = '3A:7F:' + 'AB:'.repeat(29) + 'CD';
const TOKEN = 'lk_enr_Q2hhbmdlTWVfbm90X2FfcmVhbF90b2tlbg';
const usage = (re: RegExp) => (e: unknown) => e instanceof AgentError && e.code === 'USAGE' && re.test(e.message) && !e.message.includes(TOKEN);
const none: EnrollFileWriteDeps = { restrict: async () => undefined };
const mode = (p: string): number => statSync(p).mode & 0o777;

describe('enroll-file write', () => {
  const root = mkdtempSync(join(tmpdir(), 'latchkey-efw-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const dir = (): string => join(root, `d${++n}`, 'latchkey');
  const req = (d: string, over: Partial<Parameters<typeof writeEnrollFiles>[0]> = {}) => ({
    enrollFile: join(d, 'enroll.json'), server: 'https://latchkey.example.com:8443', caFingerprint: FP, token: `${TOKEN}\r\n`, tokenFrom: 'LATCHKEY_TOKEN', force: false, ...over,
  });

  test('writes both files (0644 / 0600) that readEnrollFile and readSecretFile accept, under a 077 umask too', async () => {
    const d = dir();
    const old = process.umask(0o077);
    try {
      const r = await writeEnrollFiles(req(d, { keystore: 'file' }), none);
      assert.deepEqual(r.written, ['token file', 'enroll file']);
    } finally {
      process.umask(old);
    }
    assert.equal(mode(join(d, 'enroll.json')), 0o644);
    assert.equal(mode(join(d, 'enroll-token')), 0o600);
    assert.equal(mode(d), 0o700 & 0o755); // created under umask 077
    const f = readEnrollFile(join(d, 'enroll.json'))!;
    assert.deepEqual(f, { server: 'https://latchkey.example.com:8443', caFingerprint: FP, keystore: 'file', tokenFile: join(d, 'enroll-token') });
    assert.equal(readSecretFile(f.tokenFile, { what: 'the token', makeWith: 'x', flag: 'tokenFile' }, (m) => new Error(m)), TOKEN);
    assert.equal(readFileSync(f.tokenFile, 'utf8'), `${TOKEN}\n`);
    assert.deepEqual(readdirSync(d).sort(), ['enroll-token', 'enroll.json'], 'no temp file left behind');
  });

  test('the same request again writes nothing and repairs modes; another token or server is refused without --force, replaced with it', async () => {
    const d = dir();
    await writeEnrollFiles(req(d), none);
    const before = statSync(join(d, 'enroll.json')).ino;
    chmodSync(join(d, 'enroll-token'), 0o644);
    const restricted: string[] = [];
    assert.deepEqual((await writeEnrollFiles(req(d, { token: TOKEN }), { restrict: async (p, kind) => void restricted.push(`${kind} ${p}`) })).written, []);
    assert.deepEqual(restricted, [`secret ${join(d, 'enroll-token')}`, `public ${join(d, 'enroll.json')}`], 'unchanged files get their permissions made right too');
    assert.equal(statSync(join(d, 'enroll.json')).ino, before);
    assert.equal(mode(join(d, 'enroll-token')), 0o600);
    await assert.rejects(writeEnrollFiles(req(d, { token: 'lk_enr_other' }), none), usage(/token file .*enroll-token exists with other content \(another token\); .*--force/));
    await assert.rejects(writeEnrollFiles(req(d, { server: 'https://other.example.com' }), none), usage(/enroll file .*enroll.json exists with other content; .*--force/));
    assert.equal(readFileSync(join(d, 'enroll-token'), 'utf8'), `${TOKEN}\n`, 'a refusal changes nothing');
    const r = await writeEnrollFiles(req(d, { server: 'https://other.example.com', token: 'lk_enr_other', force: true }), none);
    assert.deepEqual(r.written, ['token file', 'enroll file']);
    assert.equal(readEnrollFile(join(d, 'enroll.json'))!.server, 'https://other.example.com');
    assert.equal(readFileSync(join(d, 'enroll-token'), 'utf8'), 'lk_enr_other\n');
  });

  test('the token file is restricted while still empty, before the token is written', async () => {
    const d = dir();
    const seen: { kind: string; size: number; mode: number }[] = [];
    await writeEnrollFiles(req(d, { tokenFile: join(d, 'secret', 'tok') }), { restrict: async (p, kind) => void seen.push({ kind, size: statSync(p).size, mode: mode(p) }) });
    assert.deepEqual(seen, [{ kind: 'secret', size: 0, mode: 0o600 }, { kind: 'public', size: 0, mode: 0o644 }]);
    assert.equal(readEnrollFile(join(d, 'enroll.json'))!.tokenFile, join(d, 'secret', 'tok'));
  });

  test('bad input is a usage error naming the field, never echoing the token, writing nothing', async () => {
    const d = dir();
    await assert.rejects(writeEnrollFiles(req(d, { server: 'http://latchkey.example.com' }), none), usage(/"server": Expected string to match/));
    await assert.rejects(writeEnrollFiles(req(d, { caFingerprint: 'sha256:nothex' }), none), usage(/"caFingerprint"/));
    await assert.rejects(writeEnrollFiles(req(d, { token: '  \r\n' }), none), usage(/LATCHKEY_TOKEN is empty/));
    await assert.rejects(writeEnrollFiles(req(d, { token: `${TOKEN} ${TOKEN}` }), none), usage(/alone on one line/));
    await assert.rejects(writeEnrollFiles(req(d, { enrollFile: 'relative/enroll.json' }), none), usage(/absolute path/));
    await assert.rejects(writeEnrollFiles(req(d, { tokenFile: join(d, 'enroll.json') }), none), usage(/two different files/));
    await assert.rejects(writeEnrollFiles(req(d, { server: `https://${'a'.repeat(3000)}` }), none), usage(/"server"/));
    assert.throws(() => statSync(d), /ENOENT/);
    mkdirSync(join(d, 'enroll.json'), { recursive: true });
    await assert.rejects(writeEnrollFiles(req(d), none), usage(/enroll\.json is not a file/));
    writeFileSync(join(d, 'big'), 'x'.repeat(70 * 1024));
    await assert.rejects(writeEnrollFiles(req(d, { enrollFile: join(d, 'big') }), none), usage(/exists with other content/));
  });

  test('the token comes from LATCHKEY_TOKEN, else stdin (bounded), never from a terminal', async () => {
    assert.deepEqual(await readTokenInput({ LATCHKEY_TOKEN: TOKEN }, Readable.from([])), { token: TOKEN, from: 'LATCHKEY_TOKEN' });
    assert.deepEqual(await readTokenInput({}, Readable.from([Buffer.from(TOKEN), Buffer.from('\r\n')])), { token: `${TOKEN}\r\n`, from: 'the token on stdin' });
    await assert.rejects(readTokenInput({}, Readable.from([Buffer.alloc(5000, 0x41)])), usage(/more than 4096 bytes/));
    await assert.rejects(readTokenInput({}, Object.assign(Readable.from([]), { isTTY: true })), usage(/on stdin .* or in LATCHKEY_TOKEN, never as an argument/));
  });

  test('Windows: icacls drops inherited entries and grants SYSTEM and Administrators (and Users read on the public file) by SID', () => {
    assert.deepEqual(icaclsArgs('C:\\ProgramData\\Latchkey\\.enroll-token.x.tmp', 'secret'), ['C:\\ProgramData\\Latchkey\\.enroll-token.x.tmp', '/inheritance:r', '/grant:r', '*S-1-5-18:F', '*S-1-5-32-544:F']);
    assert.deepEqual(icaclsArgs('C:\\x', 'public').slice(3), ['*S-1-5-18:F', '*S-1-5-32-544:F', '*S-1-5-32-545:R']);
  });
});
