/**
 * `pnpm bench:pki`: PKI core figures on this machine, printed side by side.
 *   - CSR verify + issue per second on one core (ours, and the stock @peculiar/x509 path)
 *   - CRL build time, size and RSS for 1k, 100k and 1M entries
 *   - `openssl speed ecdsap256` sign/s and verify/s, the ceiling
 * Environment: BENCH_SECONDS (default 5), BENCH_CRL_SIZES (default 1000,100000,1000000).
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { benchCrl } from './crl-bench-part.js';
import { benchIssuance } from './issuance-bench-part.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const sizes = (process.env.BENCH_CRL_SIZES ?? '1000,100000,1000000').split(',').map(Number);

function opensslSpeed(): { sign: number; verify: number } | undefined {
  const r = spawnSync('openssl', ['speed', '-seconds', String(Math.max(1, Math.round(seconds / 2))), 'ecdsap256'], { encoding: 'utf8' });
  const m = /256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/.exec(r.stdout ?? '');
  return m ? { sign: Number(m[1]), verify: Number(m[2]) } : undefined;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

console.log(`latchkey bench:pki — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} cores), one core used`);
console.log('');
const { latchkey, peculiar } = await benchIssuance(seconds);
const speed = opensslSpeed();
console.log('Issuance (P-256 device CSR: parse + verify + policy + profile + sign)');
console.log(`  latchkey pki            ${fmt(latchkey.perSecond).padStart(8)} /s   (${latchkey.ops} in ${latchkey.seconds.toFixed(1)} s)`);
console.log(`  stock @peculiar/x509    ${fmt(peculiar.perSecond).padStart(8)} /s   (${peculiar.ops} in ${peculiar.seconds.toFixed(1)} s)`);
if (speed) {
  console.log(`  openssl speed ecdsap256 ${fmt(speed.sign).padStart(8)} sign/s, ${fmt(speed.verify)} verify/s (ceiling: one sign + one verify per issuance = ${fmt(1 / (1 / speed.sign + 1 / speed.verify))} /s)`);
} else {
  console.log('  openssl speed ecdsap256: not available');
}
console.log(`  target >= 1,000 /s: ${latchkey.perSecond >= 1000 ? 'met' : 'NOT met'}`);
console.log('');
console.log('CRL build (P-256 issuer, random 128-bit serials, mixed reasons)');
console.log('  entries       build ms      size MB     RSS MB');
for (const r of await benchCrl(sizes)) {
  console.log(`  ${fmt(r.entries).padStart(9)}   ${r.buildMs.toFixed(0).padStart(10)}   ${(r.bytes / 1e6).toFixed(1).padStart(10)}   ${r.rssMb.toFixed(0).padStart(8)}`);
}
console.log('  target for 1M: < 5,000 ms and < 1,024 MB RSS');
