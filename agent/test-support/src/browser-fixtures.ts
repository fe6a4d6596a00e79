/**
 * For the browser-store tests: a throwaway CA and device certificates made by
 * openssl (an implementation independent of ours), shaped like Latchkey's
 * (SAN URI spiffe://…/device/<id>, P-256 keys), and a check for the system
 * tools the real-tool tests need.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Ctx {
  after(fn: () => unknown): void;
  skip(message?: string): void;
}

/** True when all tools are there; otherwise skips the test (fails it under LATCHKEY_REQUIRE_ALL=1). */
export function haveTools(t: Ctx, ...tools: string[]): boolean {
  const missing = tools.filter((x) => spawnSync('sh', ['-c', `command -v ${x}`]).status !== 0);
  if (missing.length === 0) return true;
  const msg = `missing ${missing.join(', ')} (apt-get install openssl libnss3-tools)`;
  if (process.env.LATCHKEY_REQUIRE_ALL === '1') throw new Error(`${msg}; required because LATCHKEY_REQUIRE_ALL=1`);
  t.skip(msg);
  return false;
}

export function sh(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function mustSh(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = sh(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

export function tempDir(t: Ctx, prefix = 'latchkey-browser-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

export interface DeviceCert {
  certPem: string;
  keyPem: string;
}

/** A CA and `n` device certificates for `deviceId`, same subject, fresh key each (as renewals make them). */
export function deviceCerts(dir: string, deviceId: string, n: number, host = 'laptop-1'): { caPem: string; certs: DeviceCert[] } {
  mustSh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=Test Issuing CA/O=Example Corp', '-days', '2'], { cwd: dir });
  writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=URI:spiffe://example.test/device/${deviceId}\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:false\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n`);
  const certs: DeviceCert[] = [];
  for (let i = 0; i < n; i++) {
    mustSh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `d${i}.key`, '-out', `d${i}.csr`, '-subj', `/UID=${deviceId}/CN=${host}/O=Example Corp`], { cwd: dir });
    mustSh('openssl', ['x509', '-req', '-in', `d${i}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `d${i}.pem`, '-days', '1', '-extfile', 'ext.cnf'], { cwd: dir });
    certs.push({ certPem: readFileSync(join(dir, `d${i}.pem`), 'utf8'), keyPem: readFileSync(join(dir, `d${i}.key`), 'utf8') });
  }
  return { caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'), certs };
}

/** `openssl pkcs12 -info -noout` (it reports on stderr), failing unless the MAC verifies with the password in `pwFile`. */
export function p12Info(file: string, pwFile: string): string {
  const r = sh('openssl', ['pkcs12', '-info', '-noout', '-in', file, '-passin', `file:${pwFile}`]);
  if (r.code !== 0) throw new Error(`openssl pkcs12 -info ${file} exited ${r.code}: ${r.stderr}`);
  return r.stdout + r.stderr;
}
