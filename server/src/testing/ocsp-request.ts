/** OCSP requests made by openssl (independent of our encoder), for tests. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Certificate, certificateToPem } from '@latchkey/pki';

/** An OCSP request for `cert` issued by `issuer`; `extra` are more `openssl ocsp` flags, put first (`-no_nonce`, `-sha256`, more `-issuer`/`-cert` pairs). */
export function ocspRequestFor(issuer: Certificate, cert: Buffer, extra: string[] = []): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'lk-ocsp-'));
  try {
    writeFileSync(join(dir, 'i.pem'), certificateToPem(issuer.der));
    writeFileSync(join(dir, 'c.pem'), certificateToPem(cert));
    const r = spawnSync('openssl', ['ocsp', ...extra, '-issuer', 'i.pem', '-cert', 'c.pem', '-reqout', 'r.der'], { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ocsp failed: ${r.stderr}`);
    return readFileSync(join(dir, 'r.der'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
