/** `users list` and `users sync`: the people the identity provider vouched for, and asking it about them again. */
import type { UserInfo, UsersSyncResult } from '@latchkey/protocol';
import { Option } from '@latchkey/cli';
import { admin, adminOptions, type Cmd } from './cli-context.js';
import { table } from './cli-output.js';

const names = (xs: readonly string[]): string => (xs.length ? xs.join(', ') : 'none');

/** The human summary of a sync: who lost access, whom the IdP could not be asked about, which devices were revoked. */
export function syncSummary(r: UsersSyncResult): string {
  const lines = [`checked ${r.checked} user(s): ${r.unchanged} unchanged, ${r.removed.length} removed, ${r.disabled.length} disabled, ${r.unreachable.length} not checked`];
  if (r.removed.length) lines.push(`removed (no longer in an allowed group or domain): ${names(r.removed)}`);
  if (r.disabled.length) lines.push(`disabled or deleted at the identity provider: ${names(r.disabled)}`);
  if (r.unreachable.length) lines.push(`the identity provider could not be asked about (nothing changed for them; run users sync again later): ${names(r.unreachable)}`);
  if (r.held) lines.push(`held: ${r.held}`);
  lines.push(r.revokedDevices.length ? `revoked ${r.revokedDevices.length} device(s): ${r.revokedDevices.join(', ')}` : 'no device was revoked');
  return lines.join('\n');
}

export const usersCommands: Cmd[] = [
  {
    usage: 'users list',
    summary: 'people who signed in through the identity provider: status, groups, devices',
    options: adminOptions(),
    examples: ['users list --server https://latchkey.example.com:8443', 'users list --json --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: UserInfo[] }>('GET', '/v1/admin/users');
      p.print(r, () => table(r.items.map((u) => ({ ...u, groups: u.groups.join(',') })), ['email', 'status', 'devices', 'groups', 'lastSignInAt', 'lastSyncedAt', 'issuer']));
      return 0;
    },
  },
  {
    usage: 'users sync',
    summary: 'ask the identity provider about every user with devices now; revokes the devices of those removed or disabled',
    options: [new Option('--force', 'revoke even when the sync would take devices from more people at once than oidc.syncHoldAbove allows (check the IdP first)'), ...adminOptions()],
    examples: ['users sync --server https://latchkey.example.com:8443', 'users sync --json --data-dir /var/lib/latchkey', 'users sync --force --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<UsersSyncResult>('POST', '/v1/admin/users/sync', ctx.o.force === true ? { force: true } : {});
      p.print(r, () => syncSummary(r));
      return 0;
    },
  },
];
