/** CRL build time, size and RSS for a given number of entries. */
import * as crypto from 'node:crypto';
import { buildCrl, createCaHierarchy, type CrlReason, type RevokedEntry } from '@latchkey/pki';

export interface CrlFigure {
  entries: number;
  buildMs: number;
  bytes: number;
  rssMb: number;
}

const REASONS: (CrlReason | undefined)[] = ['keyCompromise', 'superseded', 'cessationOfOperation', undefined, 'affiliationChanged'];

export async function benchCrl(sizes: readonly number[]): Promise<CrlFigure[]> {
  const now = new Date();
  const gen = (): crypto.KeyObject => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const { issuing } = await createCaHierarchy({ org: 'Bench Corp', now, rootKey: gen(), issuingKey: gen(), randomBytes: crypto.randomBytes });
  const out: CrlFigure[] = [];
  for (const n of sizes) {
    // Serials as a database would hand them over: 16 random bytes each, spread over a year of revocations.
    const pool = crypto.randomBytes(16 * n);
    const entries: RevokedEntry[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const reason = REASONS[i % REASONS.length];
      entries[i] = { serial: pool.subarray(i * 16, i * 16 + 16), revokedAt: new Date(now.getTime() - (i % 31_536_000) * 1000), ...(reason ? { reason } : {}) };
    }
    const t0 = performance.now();
    const der = await buildCrl({ issuer: issuing, thisUpdate: now, nextUpdate: new Date(now.getTime() + 3_600_000), crlNumber: BigInt(n), entries });
    const buildMs = performance.now() - t0;
    out.push({ entries: n, buildMs, bytes: der.length, rssMb: process.memoryUsage().rss / 1048576 });
  }
  return out;
}
