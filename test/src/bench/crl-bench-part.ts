/**
 * CRL build time, size and RSS for given numbers of entries (printed by
 * pki-bench.ts; nothing is printed here).
 */
import * as crypto from 'node:crypto';
import { buildCrl, createCaHierarchy, type CrlReason, type RevokedEntry } from '@latchkey/pki';

export interface CrlFigure {
  entries: number;
  /** Wall time of buildCrl alone (entries already in memory), one P-256 signature included. */
  buildMs: number;
  /** DER size of the CRL. */
  bytes: number;
  /** process RSS right after the build: includes the entry objects and the CRL itself. */
  rssMb: number;
}

/** Mix of reasons as a revocation table would hold them; undefined = no reasonCode extension. */
const REASONS: ReadonlyArray<CrlReason | undefined> = [
  'keyCompromise',
  'superseded',
  undefined,
  'cessationOfOperation',
  'affiliationChanged',
  'superseded',
  'privilegeWithdrawn',
  undefined,
];

const BENCH_NOW = new Date('2026-03-01T12:00:00Z');
const YEAR_S = 365 * 86_400;

export async function benchCrl(sizes: readonly number[]): Promise<CrlFigure[]> {
  const out: CrlFigure[] = [];
  for (const n of sizes) {
    const key = (): crypto.KeyObject => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const { issuing } = await createCaHierarchy({ org: 'Bench Corp', now: BENCH_NOW, rootKey: key(), issuingKey: key(), randomBytes: crypto.randomBytes });
    // Serials as the certificate store hands them over: 16 random bytes each, revocations spread over a year.
    const pool = crypto.randomBytes(16 * n);
    const entries: RevokedEntry[] = new Array<RevokedEntry>(n);
    for (let i = 0; i < n; i++) {
      const reason = REASONS[i % REASONS.length];
      const serial = pool.subarray(i * 16, i * 16 + 16);
      if (serial[0] === 0) serial[0] = 1; // positive, 16 significant octets, like randomSerial()
      const revokedAt = new Date(BENCH_NOW.getTime() - ((i * 7919) % YEAR_S) * 1000);
      entries[i] = reason ? { serial, revokedAt, reason } : { serial, revokedAt };
    }
    const t0 = performance.now();
    const der = await buildCrl({
      issuer: issuing,
      thisUpdate: BENCH_NOW,
      nextUpdate: new Date(BENCH_NOW.getTime() + 3_600_000),
      crlNumber: BigInt(n),
      entries,
    });
    const buildMs = performance.now() - t0;
    out.push({ entries: n, buildMs, bytes: der.length, rssMb: process.memoryUsage().rss / 1_048_576 });
  }
  return out;
}
