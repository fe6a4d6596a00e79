/**
 * Test support shared by the PKI tests (not exported from the package):
 * a fixed clock, deterministic-enough keys, a fresh CA, and `openssl`.
 */
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCaHierarchy, type CaHierarchy } from '../ca.js';
import { createDeviceProfile, type DeviceProfile } from '../profiles.js';

/** Every test runs at this instant unless it says otherwise. */
export const NOW = new Date('2026-03-01T12:00:00Z');
export const NOW_EPOCH = Math.floor(NOW.getTime() / 1000);

export const BASE_URL = 'https://latchkey.example.com:8443';

export function ecKey(curve: 'P-256' | 'P-384' = 'P-256'): crypto.KeyObject {
  return crypto.generateKeyPairSync('ec', { namedCurve: curve }).privateKey;
}

export function rsaKey(bits = 2048): crypto.KeyObject {
  return crypto.generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
}

export const spkiOf = (k: crypto.KeyObject): Buffer =>
  crypto.createPublicKey(k).export({ format: 'der', type: 'spki' });

export function newCa(curve: 'P-256' | 'P-384' = 'P-256', now = NOW): Promise<CaHierarchy> {
  return createCaHierarchy({
    org: 'Example Corp',
    now,
    rootKey: ecKey(curve),
    issuingKey: ecKey(curve),
    randomBytes: crypto.randomBytes,
    rootCrlUrl: `${BASE_URL}/crl/root`,
  });
}

export function deviceProfile(ca: CaHierarchy): DeviceProfile {
  return createDeviceProfile({
    issuer: ca.issuing,
    org: 'Example Corp',
    trustDomain: 'example.com',
    crlUrls: [`${BASE_URL}/crl`],
    ocspUrls: [`${BASE_URL}/ocsp`],
    caIssuersUrls: [`${BASE_URL}/.well-known/est/cacerts`],
  });
}

export const DEVICE_ID = '6f1c2a4e-0b7d-4c2e-9a51-3d2f8e7b1c90';

/** A temp dir removed after the test; `file(name, data)` writes into it and returns the path. */
export function tempDir(t: { after: (fn: () => void) => void }): { dir: string; file: (name: string, data: string | Uint8Array) => string } {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-pki-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    file(name, data) {
      const p = join(dir, name);
      writeFileSync(p, data);
      return p;
    },
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command with no shell; resolves with its exit code and output (never rejects on exit code). */
export function run(cmd: string, args: readonly string[], opts: { input?: string | Uint8Array; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('error', reject);
    p.on('close', (code) =>
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    // A command that exits before reading its input closes the pipe: not an error of ours.
    p.stdin.on('error', () => undefined);
    if (opts.input !== undefined) p.stdin.end(opts.input);
    else p.stdin.end();
  });
}

export const openssl = (args: readonly string[], opts?: { input?: string | Uint8Array; cwd?: string }): Promise<RunResult> =>
  run('openssl', args, opts);
