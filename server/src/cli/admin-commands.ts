/** The admin commands: enrollment tokens, groups, devices, the audit log (through the admin API). */
import { Option } from '@latchkey/cli';
import { ATTESTATION_MODES, REVOKE_REASONS, DeviceStatus, type Device, type GroupPolicy, type TokenCreateResponse, type TokenInfo } from '@latchkey/protocol';
import { UsageError } from '../admin-client.js';
import { terminalSafe } from '../util/terminal-text.js';
import { admin, adminOptions, duration, positiveInt, str, type Cmd } from './cli-context.js';
import { durationSeconds, table } from './cli-output.js';

export const tokenCommands: Cmd[] = [
  {
    usage: 'token create',
    summary: 'create an enrollment token; the secret alone goes to stdout, shown once',
    options: [
      new Option('--uses <n>', 'how many enrollments it allows (default 1)').argParser(positiveInt),
      new Option('--ttl <duration>', 'how long it is valid, e.g. 30m, 24h, 7d (default 24h)').argParser(duration),
      new Option('--group <name>', 'the group its devices join (default "default")'),
      ...adminOptions(),
    ],
    examples: ['token create --data-dir /var/lib/latchkey', 'token create --uses 50 --ttl 7d --group laptops --data-dir /var/lib/latchkey', 'TOKEN=$(latchkey-server token create --data-dir /var/lib/latchkey)'],
    async run(ctx) {
      const { o } = ctx;
      const { api, p } = admin(ctx);
      const r = await api.call<TokenCreateResponse>('POST', '/v1/admin/tokens', { ...(o.uses ? { uses: o.uses } : {}), ...(str(o, 'ttl') ? { ttl: str(o, 'ttl') } : {}), ...(str(o, 'group') ? { group: str(o, 'group') } : {}) });
      p.secret(r, r.token, () => `token ${r.info.id}: group ${r.info.group}, ${r.info.uses} use(s), expires ${r.info.expiresAt}; shown once, store it now`);
      return 0;
    },
  },
  {
    usage: 'token list',
    summary: 'list enrollment tokens (never their secrets)',
    options: adminOptions(),
    examples: ['token list --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: TokenInfo[] }>('GET', '/v1/admin/tokens');
      p.print(r, () => table(r.items.map((t) => ({ ...t, used: `${t.usedCount}/${t.uses}` })), ['id', 'group', 'used', 'expiresAt', 'revokedAt']));
      return 0;
    },
  },
  {
    usage: 'token revoke <id>',
    summary: 'revoke an enrollment token (ID from `token list`)',
    options: adminOptions(),
    examples: ['token revoke 3f1c… --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      await api.call('DELETE', `/v1/admin/tokens/${encodeURIComponent(id!)}`);
      p.print({ revoked: id }, () => `token ${id} revoked`);
      return 0;
    },
  },
];

export const groupCommands: Cmd[] = [
  {
    usage: 'groups set <name>',
    summary: 'create a group or change its policy; settings not given keep their value',
    options: [
      new Option('--lifetime <duration>', 'certificate lifetime, e.g. 1h, 24h, 7d (needed for a new group)').argParser(duration),
      new Option('--require-approval', 'new devices wait for `devices approve`'),
      new Option('--no-require-approval', 'new devices get their certificate at once'),
      new Option('--attestation <mode>', 'tpm: only TPM-attested device keys enroll and renew; none: any allowed key').choices([...ATTESTATION_MODES]),
      new Option('--require-registered-ek', "the device's TPM EK must be registered (`devices register`)"),
      new Option('--no-require-registered-ek', 'any genuine TPM may enroll'),
      ...adminOptions(),
    ],
    examples: [
      'groups set laptops --lifetime 24h --data-dir /var/lib/latchkey',
      'groups set contractors --require-approval --data-dir /var/lib/latchkey',
      'groups set contractors --no-require-approval --data-dir /var/lib/latchkey',
      'groups set servers --attestation tpm --require-registered-ek --data-dir /var/lib/latchkey',
    ],
    async run(ctx, [name]) {
      const { o } = ctx;
      const body = {
        ...(str(o, 'lifetime') ? { certLifetimeSeconds: durationSeconds(str(o, 'lifetime')!) } : {}),
        ...(typeof o.requireApproval === 'boolean' ? { requireApproval: o.requireApproval } : {}),
        ...(str(o, 'attestation') ? { attestation: str(o, 'attestation') } : {}),
        ...(typeof o.requireRegisteredEk === 'boolean' ? { requireRegisteredEk: o.requireRegisteredEk } : {}),
      };
      if (Object.keys(body).length === 0) throw new UsageError('groups set changes nothing: give --lifetime, --require-approval, --attestation or --require-registered-ek (or their --no- forms)');
      const { api, p } = admin(ctx);
      const r = await api.call<GroupPolicy>('PUT', `/v1/admin/groups/${encodeURIComponent(name!)}`, body);
      p.print(r, () => `group ${r.name}: certificates for ${r.certLifetimeSeconds} s, approval ${r.requireApproval ? 'required' : 'not required'}, attestation ${r.attestation}${r.attestation === 'tpm' ? `, EK ${r.requireRegisteredEk ? 'must be registered' : 'need not be registered'}` : ''}`);
      return 0;
    },
  },
  {
    usage: 'groups list',
    summary: 'list groups and their policy',
    options: adminOptions(),
    examples: ['groups list --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: Record<string, unknown>[] }>('GET', '/v1/admin/groups');
      p.print(r, () => table(r.items, ['name', 'certLifetimeSeconds', 'requireApproval', 'attestation', 'requireRegisteredEk']));
      return 0;
    },
  },
];

const DEVICE_STATUSES = DeviceStatus.anyOf.map((s) => String(s.const));

/** A device's assurance level; a server before issue 14 says nothing, which means a software key. */
export const assuranceOf = (d: Pick<Device, 'assurance'>): 'software' | 'tpm-attested' => d.assurance ?? 'software';

/** How the EK of an attested device was trusted, in words. */
const EK_TRUST: Record<'certificate' | 'registered', string> = {
  certificate: 'certificate (its EK certificate chains to a configured TPM manufacturer root)',
  registered: 'registered (an admin registered its EK: devices register)',
};

/** `devices show`: the assurance level and, for an attested device, its TPM: EK hash, how it was trusted, manufacturer, when. */
export function assuranceLines(d: Pick<Device, 'assurance' | 'tpm'>): string[] {
  const pad = (k: string): string => k.padEnd(17);
  const level = assuranceOf(d);
  const lines = [`${pad('assurance')} ${level === 'tpm-attested' ? 'tpm-attested (the key was proven to be in this device\'s TPM, non-exportable)' : 'software (no TPM attestation: the key may be in a file)'}`];
  if (d.tpm) {
    lines.push(`${pad('tpm.ekHash')} ${d.tpm.ekHash}`, `${pad('tpm.ekTrust')} ${EK_TRUST[d.tpm.ekTrust]}`, `${pad('tpm.manufacturer')} ${d.tpm.manufacturer ?? '-'}`, `${pad('tpm.attestedAt')} ${d.tpm.attestedAt}`);
  }
  return lines;
}
const devicePath = (id: string | undefined): string => `/v1/admin/devices/${encodeURIComponent(id!)}`;

export const deviceCommands: Cmd[] = [
  {
    usage: 'devices list',
    summary: 'list devices, their status, assurance (software or tpm-attested) and current certificate',
    options: [
      new Option('--status <status>', 'only devices in this status').choices(DEVICE_STATUSES),
      new Option('--group <name>', 'only devices of this group'),
      new Option('--user <email>', 'only devices bound to this person (exact email, any case)'),
      new Option('--q <text>', 'name, id, user email or certificate serial containing this text'),
      new Option('--limit <n>', 'at most this many'),
      ...adminOptions(),
    ],
    examples: ['devices list --data-dir /var/lib/latchkey', 'devices list --status pending --json --data-dir /var/lib/latchkey', 'devices list --user ada@example.com --server https://latchkey.example.com:8443'],
    async run(ctx) {
      const qs = new URLSearchParams();
      for (const k of ['status', 'group', 'user', 'q', 'limit']) if (str(ctx.o, k)) qs.set(k, str(ctx.o, k)!);
      // Oldest first, as this command always listed them (the API's default is the newest first).
      qs.set('order', 'asc');
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: Device[]; nextCursor: string | null }>('GET', `/v1/admin/devices?${qs}`);
      p.print(r, () => table(r.items.map((d) => ({ ...d, serial: d.certificate?.serial, notAfter: d.certificate?.notAfter, online: d.online === undefined ? '' : d.online ? 'yes' : 'no', assurance: assuranceOf(d) })), ['id', 'name', 'status', 'group', 'user', 'assurance', 'online', 'lastSeen', 'serial', 'notAfter']));
      return 0;
    },
  },
  {
    usage: 'devices online',
    summary: 'agents connected to the control channel now (any replica)',
    options: adminOptions(),
    examples: ['devices online --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: Record<string, unknown>[]; nextCursor: string | null }>('GET', '/v1/admin/devices/online');
      p.print(r, () => (r.items.length ? table(r.items, ['deviceId', 'since', 'agentVersion', 'serial', 'remote', 'replica']) : 'no agent is connected now'));
      return 0;
    },
  },
  {
    usage: 'devices renew-now <id>',
    summary: "ask a device's agent to renew at once",
    options: adminOptions(),
    examples: ['devices renew-now 0b6f…-… --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      const r = await api.call<{ deviceId: string; requestedAt: string }>('POST', `${devicePath(id)}/renew-now`);
      p.print(r, () => `asked device ${r.deviceId} to renew now (it does so at once if its agent is connected)`);
      return 0;
    },
  },
  {
    usage: 'devices show <id>',
    summary: 'one device: record (with the person it is bound to), assurance and TPM, facts and every certificate',
    options: adminOptions(),
    examples: ['devices show 0b6f…-… --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      const r = await api.call<Device & { certificates: Record<string, unknown>[] }>('GET', devicePath(id));
      p.print(r, () => {
        const { certificates, facts, assurance, tpm, ...d } = r;
        return [
          ...Object.entries(d).map(([k, val]) => `${k.padEnd(17)} ${terminalSafe(typeof val === 'object' && val !== null ? JSON.stringify(val) : String(val ?? '-'))}`),
          ...assuranceLines({ assurance, tpm }).map((l) => terminalSafe(l)),
          `${'facts'.padEnd(17)} ${facts ? terminalSafe(JSON.stringify(facts)) : '-'}`,
          '',
          table(certificates, ['serial', 'kind', 'notBefore', 'notAfter', 'revokedAt']),
        ].join('\n');
      });
      return 0;
    },
  },
  {
    usage: 'devices approve <id>',
    summary: 'approve a pending device; it gets its certificate on its next poll',
    options: adminOptions(),
    examples: ['devices approve 0b6f…-… --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      const r = await api.call<Device>('POST', `${devicePath(id)}/approve`);
      p.print(r, () => `device ${r.id} (${r.name}) approved; it will receive its certificate on its next poll`);
      return 0;
    },
  },
  {
    usage: 'devices deny <id>',
    summary: 'refuse a pending device for good',
    options: [new Option('--reason <text>', 'why, for the audit log'), ...adminOptions()],
    examples: ['devices deny 0b6f…-… --reason "not a company laptop" --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const why = str(ctx.o, 'reason');
      const { api, p } = admin(ctx);
      const r = await api.call<Device>('POST', `${devicePath(id)}/deny`, why ? { reason: why } : {});
      p.print(r, () => `device ${r.id} (${r.name}) denied; its agent is told on its next poll, and the same key and token will not be accepted again`);
      return 0;
    },
  },
  {
    usage: 'devices revoke <id>',
    summary: 'revoke a device and all its certificates: CRL, OCSP, gateways and its agent hear at once',
    options: [new Option('--reason <reason>', 'RFC 5280 reason').choices([...REVOKE_REASONS]).default('unspecified'), ...adminOptions()],
    examples: ['devices revoke 0b6f…-… --data-dir /var/lib/latchkey', 'devices revoke 0b6f…-… --reason keyCompromise --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const reason = str(ctx.o, 'reason') ?? 'unspecified';
      const { api, p } = admin(ctx);
      const r = await api.call<{ device: Device; serials: string[]; crlNumber: number | null; alreadyRevoked: boolean }>('POST', `${devicePath(id)}/revoke`, { reason });
      const delivered = r.crlNumber === null ? 'the CRL and the notices are retried by the server every few seconds' : `CRL #${r.crlNumber} lists it`;
      p.print(r, () =>
        r.alreadyRevoked
          ? `device ${r.device.id} (${r.device.name}) was already revoked (${r.device.revocationReason ?? 'unspecified'}) at ${r.device.revokedAt}; announced again: ${delivered}`
          : `device ${r.device.id} (${r.device.name}) revoked (${reason}); ${r.serials.length} certificate(s) revoked; ${delivered}`,
      );
      return 0;
    },
  },
];

export const auditList: Cmd = {
  usage: 'audit list',
  summary: 'the audit log, newest first',
  options: [new Option('--limit <n>', 'at most this many entries'), new Option('--action <action>', 'only this action, e.g. device.revoke'), new Option('--target <id>', 'only entries about this device, token or group'), ...adminOptions()],
  examples: ['audit list --limit 20 --data-dir /var/lib/latchkey', 'audit list --action device.revoke --json --data-dir /var/lib/latchkey'],
  async run(ctx) {
    const qs = new URLSearchParams();
    for (const k of ['limit', 'action', 'target']) if (str(ctx.o, k)) qs.set(k, str(ctx.o, k)!);
    const { api, p } = admin(ctx);
    const r = await api.call<{ items: { details: unknown }[] }>('GET', `/v1/admin/audit${qs.size ? `?${qs}` : ''}`);
    p.print(r, () => table(r.items.map((e) => ({ ...e, details: JSON.stringify(e.details) })), ['id', 'at', 'actor', 'action', 'target', 'details']));
    return 0;
  },
};

