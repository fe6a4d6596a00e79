/** `devices register` / `registered` / `unregister`: the EK inventory of issue 14, through the admin API. */
import { readFileSync } from 'node:fs';
import { Option } from '@latchkey/cli';
import { REGISTERED_DEVICES_IMPORT_LIMITS, type RegisteredDevice, type RegisteredDevicePage } from '@latchkey/protocol';
import { UsageError } from '../admin-client.js';
import { terminalSafe } from '../util/terminal-text.js';
import { RawBody } from './api-request.js';
import { admin, adminOptions, str, type Cmd } from './cli-context.js';
import { table } from './cli-output.js';

const HEX64 = /^[0-9a-fA-F]{64}$/;

/** Issue 14's inventory: devices registered in advance by their TPM's endorsement key. */
export const registeredDeviceCommands: Cmd[] = [
  {
    usage: 'devices register',
    summary: "register a device in advance by its TPM's endorsement key (EK certificate or EK hash), or many from a CSV",
    options: [
      new Option('--ek-cert <file>', "the TPM's EK certificate, PEM (e.g. from `tpm2_getekcertificate`)"),
      new Option('--ek-hash <hex>', "SHA-256 of the EK public key's SubjectPublicKeyInfo DER, 64 hex digits"),
      new Option('--csv <file>', `rows name,ek_hash[,group] (a header line allowed), at most ${REGISTERED_DEVICES_IMPORT_LIMITS.maxRows} rows; all or nothing`),
      new Option('--name <name>', 'a name or asset tag for the device'),
      new Option('--group <name>', 'the group it is meant for'),
      ...adminOptions(),
    ],
    examples: [
      'devices register --ek-cert ek.pem --name kiosk-17 --group kiosks --data-dir /var/lib/latchkey',
      'devices register --ek-hash 3b0c…e1 --name srv-4 --data-dir /var/lib/latchkey',
      'devices register --csv mdm-export.csv --data-dir /var/lib/latchkey',
    ],
    async run(ctx) {
      const { o } = ctx;
      const given = ['ekCert', 'ekHash', 'csv'].filter((k) => str(o, k));
      if (given.length !== 1) throw new UsageError('give exactly one of --ek-cert FILE, --ek-hash HEX and --csv FILE');
      if (str(o, 'csv') && (str(o, 'name') || str(o, 'group'))) throw new UsageError('--name and --group are per row in a CSV (columns name,ek_hash[,group])');
      const readText = (file: string, what: string): string => {
        try {
          return readFileSync(file, 'utf8');
        } catch (e) {
          throw new UsageError(`cannot read ${what} ${file}: ${(e as Error).message}`);
        }
      };
      const { api, p } = admin(ctx);
      if (str(o, 'csv')) {
        const text = readText(str(o, 'csv')!, 'the CSV');
        const r = await api.call<{ imported: number }>('POST', '/v1/admin/registered-devices/import', new RawBody('text/csv', Buffer.from(text)));
        p.print(r, () => `${r.imported} device(s) registered`);
        return 0;
      }
      if (str(o, 'ekHash') && !HEX64.test(str(o, 'ekHash')!)) throw new UsageError('--ek-hash must be 64 hex digits: the SHA-256 of the EK public key (SPKI DER)');
      const body = {
        ...(str(o, 'ekCert') ? { ekCertPem: readText(str(o, 'ekCert')!, 'the EK certificate') } : { ekHash: str(o, 'ekHash')! }),
        ...(str(o, 'name') ? { name: str(o, 'name') } : {}),
        ...(str(o, 'group') ? { group: str(o, 'group') } : {}),
      };
      const r = await api.call<RegisteredDevice>('POST', '/v1/admin/registered-devices', body);
      p.print(r, () => `registered ${r.id}: EK ${r.ekHash}${r.manufacturer ? ` (TPM manufacturer ${terminalSafe(r.manufacturer)})` : ''}${r.name ? `, ${terminalSafe(r.name)}` : ''}${r.group ? `, group ${r.group}` : ''}`);
      return 0;
    },
  },
  {
    usage: 'devices registered',
    summary: 'list the devices registered by EK (every page)',
    options: adminOptions(),
    examples: ['devices registered --data-dir /var/lib/latchkey', 'devices registered --json --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const items: RegisteredDevice[] = [];
      let cursor: string | null = null;
      do {
        const page: RegisteredDevicePage = await api.call<RegisteredDevicePage>('GET', `/v1/admin/registered-devices?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        items.push(...page.items);
        cursor = page.nextCursor;
      } while (cursor);
      const r = { items, nextCursor: null };
      p.print(r, () => (items.length ? table(items.map((d) => ({ ...d, usedByDevice: d.usedByDevice ?? '' })), ['id', 'name', 'group', 'ekHash', 'manufacturer', 'hasEkCert', 'createdAt', 'usedByDevice']) : 'no device is registered by EK'));
      return 0;
    },
  },
  {
    usage: 'devices unregister <id>',
    summary: 'remove a device from the EK registrations (ID from `devices registered`)',
    options: adminOptions(),
    examples: ['devices unregister 5d0e…-… --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      const r = await api.call<RegisteredDevice>('DELETE', `/v1/admin/registered-devices/${encodeURIComponent(id!)}`);
      p.print(r, () => `registration ${r.id} (EK ${r.ekHash}) removed`);
      return 0;
    },
  },
];
