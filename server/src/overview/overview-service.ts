/**
 * The console's overview (`GET /v1/admin/overview`): devices by status, who is
 * online, the approval queue, certificates about to end, recent revocations,
 * the served CRLs' age and the gateways connected to every live replica. A fixed
 * number of bounded queries, whatever the number of devices.
 */
import type { ConsoleOverview, RevokeReason } from '@latchkey/protocol';
import type { AuditRepo } from '../audit/audit-repo.js';
import type { CertificatesRepo } from '../certificates/certificates-repo.js';
import type { DevicesRepo } from '../devices/devices-repo.js';
import type { DevicesService } from '../devices/devices-service.js';
import type { EventsRepo } from '../events/events-repo.js';
import { type GatewayEventsHub, type GatewayStreamSnapshot, streamInfo } from '../gateway/gateway-events.js';
import type { CaName, CrlService } from '../revocation/crl-service.js';

/** Gateways the overview lists at most (those furthest behind first). */
const MAX_GATEWAYS_SHOWN = 200;

/** A replica's published streams; a row it wrote badly (or an older version) counts as none. */
function parseSnapshots(json: string | null): GatewayStreamSnapshot[] {
  if (!json) return [];
  try {
    const v = JSON.parse(json) as unknown;
    return Array.isArray(v) ? (v as GatewayStreamSnapshot[]).filter((g) => g && typeof g.tokenId === 'string' && typeof g.name === 'string') : [];
  } catch {
    return [];
  }
}

/** Rows each list of the overview shows. */
const SHOWN = 10;
export const DEFAULT_EXPIRING_WITHIN_SECONDS = 86_400;

export function createOverviewService(deps: {
  devices: Pick<DevicesRepo, 'countByStatus' | 'namesOf'>;
  devicesService: Pick<DevicesService, 'list'>;
  certificates: Pick<CertificatesRepo, 'expiringActive'>;
  audit: Pick<AuditRepo, 'list'>;
  events: Pick<EventsRepo, 'head'>;
  crl: Pick<CrlService, 'get'>;
  gateways: Pick<GatewayEventsHub, 'snapshot'>;
  /** The gateway streams the other live replicas published (JSON GatewayStreamSnapshot[] each). */
  gatewaysElsewhere: () => Promise<{ gateways: string | null }[]>;
  countOnline: () => Promise<number>;
  clock: () => Date;
}) {
  async function crlAge(ca: CaName, now: Date): Promise<ConsoleOverview['crl']['issuing']> {
    const c = await deps.crl.get(ca);
    if (!c) return null;
    return { crlNumber: c.crlNumber, thisUpdate: c.thisUpdate.toISOString(), nextUpdate: c.nextUpdate.toISOString(), ageSeconds: Math.floor((now.getTime() - c.thisUpdate.getTime()) / 1000) };
  }

  async function recentRevocations(): Promise<ConsoleOverview['recentRevocations']> {
    const rows = (await deps.audit.list({ action: 'device.revoke', limit: SHOWN })).filter((r) => r.target !== null);
    const names = await deps.devices.namesOf([...new Set(rows.map((r) => r.target!))]);
    return rows.map((r) => {
      const details = JSON.parse(r.details) as { reason?: string | null };
      return { deviceId: r.target!, name: names.get(r.target!) ?? '', at: r.at, reason: (details.reason as RevokeReason | undefined) ?? null, actor: r.actor };
    });
  }

  return {
    async get(withinSeconds = DEFAULT_EXPIRING_WITHIN_SECONDS): Promise<ConsoleOverview> {
      const now = deps.clock();
      const [byStatus, online, pending, expiring, revocations, issuing, root, head, elsewhere] = await Promise.all([
        deps.devices.countByStatus(),
        deps.countOnline(),
        deps.devicesService.list({ status: 'pending', sort: 'firstSeen', order: 'asc', limit: SHOWN }),
        deps.certificates.expiringActive(now.toISOString(), new Date(now.getTime() + withinSeconds * 1000).toISOString(), SHOWN),
        recentRevocations(),
        crlAge('issuing', now),
        crlAge('root', now),
        deps.events.head(),
        deps.gatewaysElsewhere(),
      ]);
      // This replica's streams as they are now; the others' as of their last heartbeat (10 s at most).
      const streams = [...deps.gateways.snapshot(), ...elsewhere.flatMap((r) => parseSnapshots(r.gateways))];
      const n = (s: string): number => byStatus[s] ?? 0;
      return {
        at: now.toISOString(),
        devices: { pending: n('pending'), active: n('active'), revoked: n('revoked'), denied: n('denied'), total: Object.values(byStatus).reduce((a, b) => a + b, 0) },
        online,
        pendingApprovals: pending.items,
        expiringSoon: { withinSeconds, count: expiring.count, items: expiring.items.map((c) => ({ deviceId: c.device_id, name: c.name, serial: c.serial, notAfter: c.not_after })) },
        recentRevocations: revocations,
        crl: { issuing, root },
        gateways: streams.map((g) => streamInfo(g, head)).sort((a, b) => b.behindEvents - a.behindEvents || a.name.localeCompare(b.name)).slice(0, MAX_GATEWAYS_SHOWN),
      };
    },
  };
}
export type OverviewService = ReturnType<typeof createOverviewService>;
