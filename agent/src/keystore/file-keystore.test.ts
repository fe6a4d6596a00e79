import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createFileKeyStore } from './file-keystore.js';
import { keystoreConformance } from './keystore-conformance.js';
import { KeystoreError } from './keystore.js';

const PASS = async () => 'correct horse battery staple';

keystoreConformance('file', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'latchkey-filestore-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return {
    open: async () => createFileKeyStore({ dir: join(root, 'a'), passphrase: PASS }),
    openOther: async () => createFileKeyStore({ dir: join(root, 'b'), passphrase: PASS }),
    extractable: true,
  };
});

test('file keystore: keys are encrypted PKCS#8, mode 0600; a wrong passphrase is a clear error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-filestore-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = createFileKeyStore({ dir, passphrase: PASS });
  const k = await s.generate();
  const file = join(dir, `${k.ref.id}.key.pem`);
  const pem = readFileSync(file, 'utf8');
  assert.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const wrong = createFileKeyStore({ dir, passphrase: async () => 'not the right passphrase' });
  await assert.rejects(wrong.load(k.ref), (e: unknown) => e instanceof KeystoreError && e.code === 'KEY_CORRUPT' && /wrong passphrase/.test(e.message) && !e.message.includes('correct horse'));
});

test('file keystore: a short passphrase is refused before any key is written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-filestore-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = createFileKeyStore({ dir, passphrase: async () => 'short' });
  await assert.rejects(s.generate(), /shorter than 12/);
  assert.deepEqual(await s.list(), []);
});
