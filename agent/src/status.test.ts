import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { certificateToPem, createCaHierarchy, createDeviceProfile, parseCertificate, randomSerial } from '@latchkey/pki';
import { AgentError } from './errors.js';
import { userOf } from './identity-fns.js';
import { enrollAgainHint, refusalMessage } from './renew/revoked.js';
import { type Identity, writeIdentity } from './state/identity.js';
import { formatStatus, readStatus } from './status.js';

const NOW = new Date('2026-12-01T12:00:00Z');

/** An identity whose certificate the real device profile issued, with the email SAN a sign-in puts there (or none). */
async function identity(email: string | undefined): Promise<Identity> {
  const key = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ca = await createCaHierarchy({ org: 'T', now: NOW, rootKey: key(), issuingKey: key(), randomBytes: crypto.randomBytes });
  const profile = createDeviceProfile({ issuer: ca.issuing, org: 'T', trustDomain: 't.test', crlUrls: ['http://x'], ocspUrls: ['http://x'], caIssuersUrls: ['http://x'] });
  const deviceId = crypto.randomUUID();
  const spki = crypto.createPublicKey(key()).export({ type: 'spki', format: 'der' });
  const der = await profile.issue({ spki, deviceId, deviceName: 'laptop', ...(email ? { email } : {}), serial: randomSerial(crypto.randomBytes), now: NOW, lifetimeSeconds: 86_400 });
  return {
    version: 1,
    server: 'https://latchkey.example:8443',
    rootFingerprint: 'ab'.repeat(32),
    rootPem: certificateToPem(ca.root.der),
    chainPem: certificateToPem(ca.issuing.cert.der),
    deviceId,
    keystore: { kind: 'file' },
    key: { keystore: 'file', id: 'lk-0123456789abcdef' },
    certPem: certificateToPem(der),
    enrolledAt: NOW.toISOString(),
  };
}

describe('the user of a device is its certificate\'s email SAN (RFC 5280 §4.2.1.6 rfc822Name)', () => {
  test('userOf reads the rfc822Name, as openssl sees it; a certificate without one names nobody', async (t) => {
    const id = await identity('ada@example.com');
    assert.equal(userOf(parseCertificate(id.certPem)), 'ada@example.com');
    assert.equal(userOf(parseCertificate((await identity(undefined)).certPem)), undefined);
    // Cross-check with an independent parser.
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-status-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'c.pem'), id.certPem);
    assert.match(execFileSync('openssl', ['x509', '-in', join(dir, 'c.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' }), /email:ada@example\.com/);
  });

  test('latchkey status shows it (text and --json); "no user" / null without one', async (t) => {
    for (const email of ['ada@example.com', undefined]) {
      const dir = await mkdtemp(join(tmpdir(), 'latchkey-status-'));
      t.after(() => rm(dir, { recursive: true, force: true }));
      await writeIdentity(dir, await identity(email));
      const s = await readStatus(dir, NOW);
      assert.equal(s.user, email ?? null);
      assert.equal(JSON.parse(JSON.stringify(s)).user, email ?? null, '--json keeps the null');
      assert.match(formatStatus(s), new RegExp(`^user {10}${email ? 'ada@example\\.com' : 'no user'}$`, 'm'));
    }
  });
});

describe('enrolling again after recovery past the grace window (CERT_EXPIRED_PAST_GRACE)', () => {
  const pastGrace = new AgentError('REENROLL_REQUIRED', 'renewing: the server answered 403 CERT_EXPIRED_PAST_GRACE: expired 40 days ago', { status: 403, serverCode: 'CERT_EXPIRED_PAST_GRACE' });
  test('a device bound to a person: sign in again with --sso, no new token', async () => {
    const id = await identity('ada@example.com');
    const m = refusalMessage('reenroll-required', pastGrace, id);
    assert.match(m, /Sign in again as ada@example\.com to enroll it: `latchkey unenroll && latchkey enroll --server https:\/\/latchkey\.example:8443 --ca-fingerprint (ab){32} --sso`/);
    assert.doesNotMatch(m, /new token/);
  });
  test('a device enrolled with a token: a new token', async () => {
    const m = enrollAgainHint(await identity(undefined));
    assert.match(m, /^Enroll it again with a new token: `latchkey unenroll && latchkey enroll --server https:\/\/latchkey\.example:8443 --ca-fingerprint (ab){32} --token T`$/);
  });
  test('without the identity, both ways are named', () => {
    assert.match(enrollAgainHint(undefined), /--token T` \(or --sso to sign in\)/);
  });
});
