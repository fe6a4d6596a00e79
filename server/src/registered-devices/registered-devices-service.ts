/**
 * The EK inventory: an admin registers devices in advance by their TPM's
 * endorsement key (an EK certificate, or the SHA-256 of the EK's SPKI), one
 * at a time or as a CSV. Every change is audited in its transaction.
 */
import { randomUUID } from 'node:crypto';
import type { RegisteredDevice, RegisteredDeviceCreateRequest, RegisteredDevicePage } from '@latchkey/protocol';
import { isTpmError, readEkCertificate } from '@latchkey/tpm';
import { auditRepo } from '../audit/audit-repo.js';
import { LatchkeyError } from '../errors.js';
import { groupsRepo } from '../groups/groups-repo.js';
import type { RegisteredDevicesTable } from '../storage/schema.js';
import type { Transactor, Trx } from '../storage/transaction.js';
import { decodeRegisteredCursor, encodeRegisteredCursor, type ImportRow, parseRegisteredDevicesCsv } from './registered-devices-fns.js';
import { type RegisteredDevicesRepo, registeredDevicesRepo } from './registered-devices-repo.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export const toRegisteredDevice = (r: RegisteredDevicesTable): RegisteredDevice => ({
  id: r.id,
  ekHash: r.ek_hash,
  manufacturer: r.manufacturer,
  hasEkCert: r.ek_cert !== null,
  name: r.name,
  group: r.group_name,
  createdAt: r.created_at,
  createdBy: r.created_by,
  usedByDevice: r.used_by_device,
});

export interface RegisteredDevicesService {
  register(req: RegisteredDeviceCreateRequest, actor: string): Promise<RegisteredDevice>;
  importCsv(text: string, actor: string): Promise<{ imported: number }>;
  list(limit: number, cursor?: string): Promise<RegisteredDevicePage>;
  remove(id: string, actor: string): Promise<RegisteredDevice>;
}

/** Groups named by the rows must exist; the first unknown one is named with its line. */
async function checkGroups(trx: Trx, rows: Pick<ImportRow, 'group' | 'line'>[], where: (line: number) => string): Promise<void> {
  const known = new Map<string, boolean>();
  for (const r of rows) {
    if (!r.group) continue;
    if (!known.has(r.group)) known.set(r.group, !!(await groupsRepo(trx).get(r.group)));
    if (!known.get(r.group)) throw new LatchkeyError('NOT_FOUND', `${where(r.line)}group "${r.group}" does not exist; create it with \`latchkey-server groups set ${r.group} --lifetime 24h\`${r.line ? '; nothing was imported' : ''}`);
  }
}

export function createRegisteredDevicesService(deps: { tx: Transactor; list: Pick<RegisteredDevicesRepo, 'list' | 'findById'>; clock: () => Date }): RegisteredDevicesService {
  const duplicate = (hash: string, where = ''): LatchkeyError =>
    new LatchkeyError('CONFLICT', `${where}the EK ${hash.slice(0, 16)}… is registered already; see \`latchkey-server devices registered\`, or remove it first${where ? '; nothing was imported' : ''}`);

  async function insertAll(rows: RegisteredDevicesTable[], lines: number[], actor: string, at: string, audit: (trx: Trx) => Promise<void>): Promise<void> {
    await deps.tx.inTransaction(async (trx) => {
      const repo = registeredDevicesRepo(trx);
      await checkGroups(trx, rows.map((r, i) => ({ group: r.group_name, line: lines[i] ?? 0 })), (line) => (line ? `line ${line}: ` : ''));
      const taken = await repo.registeredOf(rows.map((r) => r.ek_hash));
      const i = rows.findIndex((r) => taken.has(r.ek_hash));
      if (i >= 0) throw duplicate(rows[i]!.ek_hash, lines[i] ? `line ${lines[i]}: ` : '');
      await repo.insert(rows);
      await audit(trx);
    });
    await deps.tx.durable();
  }

  return {
    async register(req, actor) {
      if ((req.ekCertPem === undefined) === (req.ekHash === undefined)) throw new LatchkeyError('BAD_REQUEST', 'give exactly one of ekCertPem (the EK certificate, PEM) and ekHash (SHA-256 hex of the EK public key)');
      let ekHash = req.ekHash?.toLowerCase();
      let manufacturer: string | null = null;
      let ekCert: string | null = null;
      if (req.ekCertPem !== undefined) {
        try {
          const r = readEkCertificate(req.ekCertPem);
          ekHash = r.ekHash;
          manufacturer = r.tpm.manufacturer ?? null;
          ekCert = req.ekCertPem.trim() + '\n';
        } catch (e) {
          if (isTpmError(e)) throw new LatchkeyError('BAD_REQUEST', `${e.message}; give the TPM's EK certificate as PEM (e.g. from \`tpm2_getekcertificate\`), or its EK hash instead`, { cause: e });
          throw e;
        }
      }
      const at = deps.clock().toISOString();
      const row: RegisteredDevicesTable = { id: randomUUID(), ek_hash: ekHash!, ek_cert: ekCert, manufacturer, name: req.name ?? null, group_name: req.group ?? null, created_at: at, created_by: actor, used_by_device: null };
      await insertAll([row], [0], actor, at, (trx) => auditRepo(trx).insert({ at, actor, action: 'registered-device.create', target: row.id, details: { ekHash: row.ek_hash, name: row.name, group: row.group_name, byCertificate: ekCert !== null } }));
      return toRegisteredDevice(row);
    },

    async importCsv(text, actor) {
      const parsed = parseRegisteredDevicesCsv(text);
      const at = deps.clock().toISOString();
      const rows = parsed.map((p): RegisteredDevicesTable => ({ id: randomUUID(), ek_hash: p.ekHash, ek_cert: null, manufacturer: null, name: p.name, group_name: p.group, created_at: at, created_by: actor, used_by_device: null }));
      await insertAll(rows, parsed.map((p) => p.line), actor, at, (trx) => auditRepo(trx).insert({ at, actor, action: 'registered-device.import', target: null, details: { rows: rows.length } }));
      return { imported: rows.length };
    },

    async list(limit, cursor) {
      const rows = await deps.list.list(limit + 1, cursor ? decodeRegisteredCursor(cursor) : undefined);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { items: page.map(toRegisteredDevice), nextCursor: rows.length > limit && last ? encodeRegisteredCursor(last.created_at, last.id) : null };
    },

    async remove(id, actor) {
      const at = deps.clock().toISOString();
      const gone = await deps.tx.inTransaction(async (trx) => {
        const repo = registeredDevicesRepo(trx);
        const row = UUID.test(id) ? await repo.findById(id) : undefined;
        if (!row || !(await repo.delete(id))) throw new LatchkeyError('NOT_FOUND', `no registered device ${id}; see \`latchkey-server devices registered\``);
        await auditRepo(trx).insert({ at, actor, action: 'registered-device.delete', target: id, details: { ekHash: row.ek_hash, name: row.name } });
        return row;
      });
      await deps.tx.durable();
      return toRegisteredDevice(gone);
    },
  };
}
