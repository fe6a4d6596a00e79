/** `admin-token create|list|revoke` (API tokens for automation, and people's sessions) and `whoami`, through the admin API. */
import { Option } from '@latchkey/cli';
import { AdminRole, type AdminTokenCreateResponse, type AdminTokenInfo, type WhoAmI } from '@latchkey/protocol';
import { admin, adminOptions, duration, need, str, type Cmd } from './cli-context.js';
import { table } from './cli-output.js';

const ROLES = AdminRole.anyOf.map((s) => String(s.const));

export const adminTokenCommands: Cmd[] = [
  {
    usage: 'admin-token create',
    summary: 'create an admin API token for automation; the secret alone goes to stdout, shown once',
    options: [
      new Option('--name <name>', 'what it is for, unique among live tokens (a-z 0-9 _ . -)'),
      new Option('--role <role>', 'what it may do; at most your own role').choices(ROLES),
      new Option('--ttl <duration>', 'how long it is valid, e.g. 30d; at most 365d (default 90d)').argParser(duration),
      ...adminOptions(),
    ],
    examples: ['admin-token create --name ci-deploy --role operator --data-dir /var/lib/latchkey', 'admin-token create --name backup-audit --role viewer --ttl 30d --json'],
    async run(ctx) {
      const { o } = ctx;
      const body = { name: need(o, 'name', '--name', 'what the token is for, e.g. --name ci-deploy'), role: need(o, 'role', '--role', `one of ${ROLES.join(', ')}`), ...(str(o, 'ttl') ? { ttl: str(o, 'ttl') } : {}) };
      const { api, p } = admin(ctx);
      const r = await api.call<AdminTokenCreateResponse>('POST', '/v1/admin/admin-tokens', body);
      p.secret(r, r.token, () => `admin token ${r.info.id} "${r.info.name}": role ${r.info.role}, expires ${r.info.expiresAt}; shown once, store it now`);
      return 0;
    },
  },
  {
    usage: 'admin-token list',
    summary: 'list admin tokens (the bootstrap token of init and API tokens; never their secrets)',
    options: [new Option('--sessions', "people's live sessions too"), ...adminOptions()],
    examples: ['admin-token list --data-dir /var/lib/latchkey', 'admin-token list --sessions --json'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: AdminTokenInfo[] }>('GET', `/v1/admin/admin-tokens${ctx.o.sessions ? '?sessions=true' : ''}`);
      p.print(r, () => table(r.items.map((t) => ({ ...t, expires: t.expiresAt, lastUsed: t.lastUsedAt, revoked: t.revokedAt })), ['id', 'name', 'role', 'kind', 'user', 'expires', 'lastUsed', 'revoked']));
      return 0;
    },
  },
  {
    usage: 'admin-token revoke <id>',
    summary: 'revoke an admin token or end a session (ID from `admin-token list --sessions`); the bootstrap token too, once people sign in',
    options: adminOptions(),
    examples: ['admin-token revoke 3f1c… --data-dir /var/lib/latchkey', 'admin-token revoke $(latchkey-server admin-token list --json | jq -r \'.items[] | select(.kind=="bootstrap") | .id\')'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      const r = await api.call<AdminTokenInfo>('DELETE', `/v1/admin/admin-tokens/${encodeURIComponent(id!)}`);
      p.print(r, () => `${r.kind === 'session' ? `session of ${r.user ?? r.name}` : `admin token "${r.name}"`} (${r.id}) revoked`);
      return 0;
    },
  },
  {
    usage: 'whoami',
    summary: 'who the admin API sees: your session or the API token, its role and end',
    options: adminOptions(),
    examples: ['whoami --data-dir /var/lib/latchkey', 'whoami --json'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<WhoAmI>('GET', '/v1/admin/whoami');
      p.print(r, () => `${r.actor} (${r.kind}), role ${r.role}${r.expiresAt ? `, until ${r.expiresAt}` : ''}`);
      return 0;
    },
  },
];
