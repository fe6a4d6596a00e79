import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MAX_SECRET_FILE_BYTES, cleanSecret, readSecretFile } from './secret-input.js';

const fail = (m: string): Error => new Error(m);
const src = { what: 'the enrollment token', makeWith: 'latchkey-server token create' };
const TOKEN = 'lk_enr_0123456789abcdefABCDEF-_';

describe('secrets from files and the environment', () => {
  test('RFC 9110 §5.5: CRLF, a trailing newline or spaces around the token are removed, so the Authorization header is valid', () => {
    for (const raw of [`${TOKEN}\r\n`, `${TOKEN}\n`, `  ${TOKEN}\t \r\n`, TOKEN]) assert.equal(cleanSecret(raw, { ...src, where: 'LATCHKEY_TOKEN' }, fail), TOKEN);
  });

  test('empty, two lines, inner spaces, control or non-ASCII characters are refused, and the message never shows the value', () => {
    for (const raw of ['', ' \r\n', `${TOKEN}\r\nsecond`, `lk_enr_ab cd`, `lk_enr_ab\x00cd`, 'lk_enr_é']) {
      assert.throws(() => cleanSecret(raw, { ...src, where: '--token' }, fail), (e: Error) => {
        assert.match(e.message, /^--token (is empty|must hold the enrollment token alone on one line)/);
        assert.ok(!e.message.includes('lk_enr_ab') && !e.message.includes('second'));
        return true;
      });
    }
  });

  test('a token file: 0600 with CRLF reads; missing, a directory, readable by others, or too large are refused with what to do', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-secret-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const f = join(dir, 'token');
    writeFileSync(f, `${TOKEN}\r\n`, { mode: 0o600 });
    assert.equal(readSecretFile(f, { ...src, flag: '--token-file' }, fail), TOKEN);
    assert.throws(() => readSecretFile(join(dir, 'nope'), { ...src, flag: '--token-file' }, fail), /--token-file .*nope: no such file/);
    assert.throws(() => readSecretFile(dir, { ...src, flag: '--token-file' }, fail), /is not a file/);
    if (process.platform !== 'win32') {
      chmodSync(f, 0o644);
      assert.throws(() => readSecretFile(f, { ...src, flag: '--token-file' }, fail), /can be read by other users \(mode 644\); run chmod 600/);
      chmodSync(f, 0o600);
    }
    writeFileSync(f, 'x'.repeat(MAX_SECRET_FILE_BYTES + 1), { mode: 0o600 });
    assert.throws(() => readSecretFile(f, { ...src, flag: '--token-file' }, fail), /bytes; it should hold only the enrollment token/);
  });
});
