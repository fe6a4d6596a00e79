/**
 * CRLs for the issuing CA and the root: regenerated right after every
 * revocation (by the revocation outbox), when a superseded certificate's
 * overlap ends (checked every tick), and before half their validity has
 * passed; CRL numbers are
 * monotonic across restarts and replicas (kept in crl_state, updated under a
 * row lock on PostgreSQL).
 */
import { type CrlReason, type Issuer, buildCrl, crlToPem, isCrlReason } from '@latchkey/pki';
import type { CaContext } from '../ca/ca-context.js';
import type { EventBus } from '../events/event-bus.js';
import { type CertificatesRepo, certificatesRepo } from '../certificates/certificates-repo.js';
import type { Transactor } from '../storage/transaction.js';
import type { CrlStateTable } from '../storage/schema.js';
import { type CrlStateRepo, crlStateRepo } from './crl-state-repo.js';

export type CaName = 'issuing' | 'root';

export interface CurrentCrl {
  der: Buffer;
  pem: string;
  crlNumber: number;
  thisUpdate: Date;
  nextUpdate: Date;
}

export interface CrlService {
  /** The current CRL, regenerating it first if it is missing or half-expired. */
  get(ca: CaName): Promise<CurrentCrl | undefined>;
  /** Builds new CRLs now (after a revocation); resolves to the numbers of the CRLs built. */
  regenerate(which?: readonly CaName[]): Promise<Partial<Record<CaName, number>>>;
  /** Drops the cache (another replica published a new CRL). */
  invalidate(): void;
  start(): void;
  stop(): void;
}

export interface CrlServiceDeps {
  crlState: Pick<CrlStateRepo, 'get'>;
  certificates: Pick<CertificatesRepo, 'revocationDueSince'>;
  tx: Transactor;
  /** Whether the engine takes row locks (PostgreSQL): CRL numbers are then taken under one. */
  rowLocks: boolean;
  ca: Pick<CaContext, 'issuing' | 'rootIssuer'>;
  validitySeconds: number;
  clock: () => Date;
  bus: Pick<EventBus, 'publish'>;
  onError: (e: unknown) => void;
}

export function createCrlService(deps: CrlServiceDeps): CrlService {
  const { ca } = deps;
  const cache = new Map<CaName, CurrentCrl>();
  /** CRLs whose rebuild after a revocation failed: rebuilt on the next request or tick. */
  const dirty = new Set<CaName>();
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<unknown> = Promise.resolve();

  const issuerOf = (name: CaName): Issuer | undefined => (name === 'issuing' ? ca.issuing : ca.rootIssuer);
  const fromRow = (r: CrlStateTable): CurrentCrl => {
    const der = Buffer.from(r.der_base64, 'base64');
    return { der, pem: crlToPem(der), crlNumber: Number(r.crl_number), thisUpdate: new Date(r.this_update), nextUpdate: new Date(r.next_update) };
  };
  const stale = (c: CurrentCrl, now: Date): boolean => now.getTime() >= (c.thisUpdate.getTime() + c.nextUpdate.getTime()) / 2;
  /** A superseded certificate whose overlap ended after this CRL was made: it must be listed now. */
  const overdue = async (c: CurrentCrl, now: Date): Promise<boolean> => deps.certificates.revocationDueSince(c.thisUpdate.toISOString(), now.toISOString());

  async function build(name: CaName): Promise<CurrentCrl | undefined> {
    const issuer = issuerOf(name);
    if (!issuer) return undefined;
    const now = deps.clock();
    const row = await deps.tx.inTransaction(async (trx) => {
      const prev = await crlStateRepo(trx).getLocked(name, deps.rowLocks);
      const crlNumber = (prev ? Number(prev.crl_number) : 0) + 1;
      // The root only ever signs the issuing CA, which Latchkey does not revoke: its CRL is empty.
      const revoked = name === 'issuing' ? await certificatesRepo(trx).revokedUnexpired(now.toISOString()) : [];
      const der = await buildCrl({
        issuer,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + deps.validitySeconds * 1000),
        crlNumber: BigInt(crlNumber),
        entries: revoked.map((r) => ({
          serial: r.serial,
          revokedAt: new Date(r.revoked_at!),
          ...(r.revocation_reason && isCrlReason(r.revocation_reason) ? { reason: r.revocation_reason as CrlReason } : {}),
        })),
      });
      const next: CrlStateTable = {
        ca: name,
        crl_number: crlNumber,
        this_update: now.toISOString(),
        next_update: new Date(now.getTime() + deps.validitySeconds * 1000).toISOString(),
        der_base64: der.toString('base64'),
        revision: crlNumber,
      };
      await crlStateRepo(trx).save(next);
      return next;
    });
    // A CRL number is never served before it is durable, so none is ever reused.
    await deps.tx.durable();
    const c = fromRow(row);
    cache.set(name, c);
    await deps.bus.publish({ type: 'crl-updated', ca: name, crlNumber: c.crlNumber, at: now.toISOString() });
    return c;
  }

  /** One regeneration at a time in this process. */
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = chain.then(fn, fn);
    chain = p.catch(() => undefined);
    return p;
  };

  async function load(name: CaName): Promise<CurrentCrl | undefined> {
    const row = await deps.crlState.get(name);
    if (!row) return undefined;
    const c = fromRow(row);
    cache.set(name, c);
    return c;
  }

  const service: CrlService = {
    async get(name) {
      const now = deps.clock();
      let c = cache.get(name) ?? (await load(name));
      if (!c || stale(c, now) || dirty.has(name)) {
        c = await serial(async () => {
          const fresh = await load(name);
          if (fresh && !stale(fresh, deps.clock()) && !dirty.has(name)) return fresh;
          const built = await build(name);
          dirty.delete(name);
          return built;
        });
      }
      return c;
    },
    regenerate(which = ['issuing', 'root']) {
      return serial(async () => {
        const numbers: Partial<Record<CaName, number>> = {};
        for (const n of which) {
          try {
            const built = await build(n);
            if (built) numbers[n] = built.crlNumber;
            dirty.delete(n);
          } catch (e) {
            dirty.add(n);
            throw e;
          }
        }
        return numbers;
      });
    },
    invalidate() {
      cache.clear();
    },
    start() {
      const tick = (): void => {
        void (async () => {
          const issuing = await service.get('issuing');
          await service.get('root');
          if (issuing && (await overdue(issuing, deps.clock()))) await service.regenerate(['issuing']);
        })().catch(deps.onError);
      };
      // Every 10 s at most: an ended overlap reaches the CRL within that.
      timer = setInterval(tick, Math.min(10_000, (deps.validitySeconds * 1000) / 4));
      timer.unref();
      tick();
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
  return service;
}

