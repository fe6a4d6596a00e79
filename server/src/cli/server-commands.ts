/**
 * The table of latchkey-server's commands: what each is called, takes,
 * shows as an example, and does. init, start and the gateway commands are
 * imported where used: admin commands stay quick to start (they load the
 * admin client only, not fastify, the database drivers and the CA).
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type CommandSpec, type ProgramSpec } from '@latchkey/cli';
import { REVOKE_REASONS, DeviceStatus, type Device, type GatewayTokenCreateResponse, type GatewayTokenInfo, type GroupPolicy, type TokenCreateResponse, type TokenInfo } from '@latchkey/protocol';
import { UsageError, adminClientFrom, type AdminClient } from '../admin-client.js';
import { durationSeconds, printer, table, type Printer } from './cli-output.js';
import { terminalSafe } from '../util/terminal-text.js';

export interface ServerCliCtx {
  /** The command's options with the global ones. */
  o: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  out: (s: string) => void;
  err: (s: string) => void;
}

type Cmd = CommandSpec<ServerCliCtx>;

const str = (o: Record<string, unknown>, k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
const need = (o: Record<string, unknown>, k: string, flag: string, what: string): string => {
  const s = str(o, k);
  if (!s) throw new UsageError(`${flag} is required (${what})`);
  return s;
};

const duration = (v: string): string => {
  if (durationSeconds(v) === undefined) throw new InvalidArgumentError('It must look like 30m, 24h or 7d.');
  return v;
};
const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('It must be a positive integer.');
  return n;
};

/** How admin commands find the running server and what they print. */
const adminOptions = (): Option[] => [
  new Option('--data-dir <dir>', "the server's data dir: URL, CA and admin token come from it (on the server host)"),
  new Option('--server <url>', 'the server, https://HOST:PORT (with LATCHKEY_ADMIN_TOKEN); env LATCHKEY_SERVER'),
  new Option('--ca-file <file>', "the root CA to trust for --server (PEM)"),
  new Option('--json', 'print only JSON on stdout'),
];

function admin(ctx: ServerCliCtx): { api: AdminClient; p: Printer } {
  const { o } = ctx;
  const api = adminClientFrom({ ...(str(o, 'dataDir') ? { dataDir: str(o, 'dataDir')! } : {}), ...(str(o, 'server') ? { server: str(o, 'server')! } : {}), ...(str(o, 'caFile') ? { caFile: str(o, 'caFile')! } : {}), env: ctx.env });
  return { api, p: printer(!!o.json, ctx.out, ctx.err) };
}

const init: Cmd = {
  usage: 'init',
  summary: 'create the CAs, TLS and OCSP certificates, config, database and a first admin token in a new data dir',
  options: [
    new Option('--data-dir <dir>', 'where the CA, config and database live (made 0700)'),
    new Option('--org <name>', 'organization name for certificate subjects'),
    new Option('--url <url>', 'the https://HOST:PORT devices will use'),
    new Option('--listen <host:port>', 'address to listen on (default: the URL\'s port on all addresses)'),
    new Option('--trust-domain <domain>', 'SPIFFE trust domain of device ids'),
    new Option('--database-url <url>', 'postgres://… (default: SQLite in the data dir)'),
    new Option('--key-type <type>', 'CA key type').choices(['p256', 'p384']).default('p256'),
    new Option('--import-ca <files...>', 'use an existing issuing CA: CERT KEY (key passphrase from LATCHKEY_IMPORT_KEY_PASSPHRASE)'),
    new Option('--import-root <file>', 'the root the imported CA chains to'),
    new Option('--json', 'print only JSON on stdout'),
  ],
  examples: ['init --data-dir /var/lib/latchkey --org "Example Corp" --url https://latchkey.example.com:8443', 'init --data-dir /var/lib/latchkey --org Acme --url https://pki.acme.test:8443 --import-ca issuing.pem issuing.key --import-root root.pem'],
  async run(ctx) {
    const { o, env } = ctx;
    const importCa = o.importCa as string[] | undefined;
    let ca: { cert: string; key: string; root: string } | undefined;
    if (importCa) {
      if (importCa.length !== 2) throw new UsageError('--import-ca takes two files: CERT KEY');
      ca = { cert: importCa[0]!, key: importCa[1]!, root: need(o, 'importRoot', '--import-root', 'the root the imported CA chains to') };
    }
    const dataDir = need(o, 'dataDir', '--data-dir', 'where the CA, config and database live');
    const org = need(o, 'org', '--org', 'organization name for certificate subjects');
    const url = need(o, 'url', '--url', 'the https://HOST:PORT devices will use');
    const { initDataDir } = await import('../init.js');
    const r = await initDataDir({
      dataDir,
      org,
      url,
      ...(str(o, 'listen') ? { listen: str(o, 'listen')! } : {}),
      ...(str(o, 'trustDomain') ? { trustDomain: str(o, 'trustDomain')! } : {}),
      ...(str(o, 'databaseUrl') ? { databaseUrl: str(o, 'databaseUrl')! } : {}),
      keyType: o.keyType === 'p384' ? 'P-384' : 'P-256',
      ...(ca ? { importCa: { ...ca, ...(env.LATCHKEY_IMPORT_KEY_PASSPHRASE ? { keyPassphrase: env.LATCHKEY_IMPORT_KEY_PASSPHRASE } : {}) } } : {}),
      ...(env.LATCHKEY_CA_PASSPHRASE ? { passphrase: env.LATCHKEY_CA_PASSPHRASE } : {}),
    });
    if (o.json) {
      ctx.out(JSON.stringify({ dataDir: r.dataDir, url: r.config.url, rootFingerprint: r.rootFingerprint, adminTokenFile: `${r.dataDir}/admin-token`, passphraseFile: r.passphraseFile ?? null }, null, 2));
      return 0;
    }
    ctx.out(`Initialized ${r.dataDir}

  Root CA SHA-256 fingerprint (agents pin it with --ca-fingerprint):
    ${r.rootFingerprint}

  CA keys are encrypted at rest (PKCS#8, AES-256) in ${r.dataDir}/*.key.pem.
  ${r.passphraseFile ? `Their passphrase is in ${r.passphraseFile} (mode 0600). Move it off this disk
  for production and pass it as LATCHKEY_CA_PASSPHRASE instead.` : 'Their passphrase is the LATCHKEY_CA_PASSPHRASE you set; keep it safe.'}
  Back up the whole data dir${r.config.databaseUrl ? ' and your PostgreSQL database' : ''}: losing it loses the CA.
  ${r.rootKeyHeld ? 'The root key is held here to sign the root CRL.' : 'The imported CA\'s root key is not held here: publish the root CRL from your PKI.'}
  A first admin token is in ${r.dataDir}/admin-token (mode 0600).

Next:
  latchkey-server start --data-dir ${r.dataDir}
  latchkey-server token create --data-dir ${r.dataDir}
`);
    return 0;
  },
};

const start: Cmd = {
  usage: 'start',
  summary: 'run the server (EST, CRL, OCSP, admin API, control channel) until SIGTERM or SIGINT',
  options: [
    new Option('--data-dir <dir>', 'the directory made by `latchkey-server init`'),
    new Option('--listen <host:port>', 'override config.json listen; env LATCHKEY_LISTEN'),
    new Option('--database-url <url>', 'override config.json databaseUrl; env LATCHKEY_DATABASE_URL'),
  ],
  examples: ['start --data-dir /var/lib/latchkey', 'start --data-dir /var/lib/latchkey --listen 0.0.0.0:8443'],
  async run(ctx) {
    const { o } = ctx;
    const dataDir = need(o, 'dataDir', '--data-dir', 'the directory made by `latchkey-server init`');
    const { startServer } = await import('../start.js');
    const s = await startServer(dataDir, ctx.env, { ...(str(o, 'listen') ? { listen: str(o, 'listen')! } : {}), ...(str(o, 'databaseUrl') ? { databaseUrl: str(o, 'databaseUrl')! } : {}) }, ctx.err);
    ctx.err(`Enroll a first device:
  latchkey-server token create --data-dir ${dataDir}
  latchkey enroll --server ${s.url} --token <token> --ca-fingerprint <root fingerprint from init>   (the agent)
or with curl + openssl, see README.md "Enroll with curl and openssl".`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string): void => {
        ctx.err(`${sig}: finishing in-flight requests and shutting down`);
        void s.close().then(resolve, (e: unknown) => {
          ctx.err(`shutdown failed: ${(e as Error).message}`);
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  },
};

const tokenCommands: Cmd[] = [
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

const groupCommands: Cmd[] = [
  {
    usage: 'groups set <name>',
    summary: 'create a group or change its policy; settings not given keep their value',
    options: [
      new Option('--lifetime <duration>', 'certificate lifetime, e.g. 1h, 24h, 7d (needed for a new group)').argParser(duration),
      new Option('--require-approval', 'new devices wait for `devices approve`'),
      new Option('--no-require-approval', 'new devices get their certificate at once'),
      ...adminOptions(),
    ],
    examples: ['groups set laptops --lifetime 24h --data-dir /var/lib/latchkey', 'groups set contractors --require-approval --data-dir /var/lib/latchkey', 'groups set contractors --no-require-approval --data-dir /var/lib/latchkey'],
    async run(ctx, [name]) {
      const { o } = ctx;
      const body = { ...(str(o, 'lifetime') ? { certLifetimeSeconds: durationSeconds(str(o, 'lifetime')!) } : {}), ...(typeof o.requireApproval === 'boolean' ? { requireApproval: o.requireApproval } : {}) };
      if (Object.keys(body).length === 0) throw new UsageError('groups set changes nothing: give --lifetime, --require-approval or --no-require-approval');
      const { api, p } = admin(ctx);
      const r = await api.call<GroupPolicy>('PUT', `/v1/admin/groups/${encodeURIComponent(name!)}`, body);
      p.print(r, () => `group ${r.name}: certificates for ${r.certLifetimeSeconds} s, approval ${r.requireApproval ? 'required' : 'not required'}`);
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
      p.print(r, () => table(r.items, ['name', 'certLifetimeSeconds', 'requireApproval']));
      return 0;
    },
  },
];

const DEVICE_STATUSES = DeviceStatus.anyOf.map((s) => String(s.const));
const devicePath = (id: string | undefined): string => `/v1/admin/devices/${encodeURIComponent(id!)}`;

const deviceCommands: Cmd[] = [
  {
    usage: 'devices list',
    summary: 'list devices, their status and current certificate',
    options: [
      new Option('--status <status>', 'only devices in this status').choices(DEVICE_STATUSES),
      new Option('--group <name>', 'only devices of this group'),
      new Option('--q <text>', 'name, id or hostname containing this text'),
      new Option('--limit <n>', 'at most this many'),
      ...adminOptions(),
    ],
    examples: ['devices list --data-dir /var/lib/latchkey', 'devices list --status pending --json --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const qs = new URLSearchParams();
      for (const k of ['status', 'group', 'q', 'limit']) if (str(ctx.o, k)) qs.set(k, str(ctx.o, k)!);
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: Device[]; nextCursor: string | null }>('GET', `/v1/admin/devices${qs.size ? `?${qs}` : ''}`);
      p.print(r, () => table(r.items.map((d) => ({ ...d, serial: d.certificate?.serial, notAfter: d.certificate?.notAfter, online: d.online === undefined ? '' : d.online ? 'yes' : 'no' })), ['id', 'name', 'status', 'group', 'online', 'lastSeen', 'serial', 'notAfter']));
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
    summary: 'one device: record, facts and every certificate',
    options: adminOptions(),
    examples: ['devices show 0b6f…-… --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      const r = await api.call<Device & { certificates: Record<string, unknown>[] }>('GET', devicePath(id));
      p.print(r, () => {
        const { certificates, facts, ...d } = r;
        return [
          ...Object.entries(d).map(([k, val]) => `${k.padEnd(17)} ${terminalSafe(typeof val === 'object' && val !== null ? JSON.stringify(val) : String(val ?? '-'))}`),
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

const auditList: Cmd = {
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

/** Options of `gateway config`, handed on as words to gateway-config.ts, which checks them. */
const GATEWAY_CONFIG_OPTIONS: [flag: string, key: string, help: string][] = [
  ['--listen <host:port>', 'listen', 'where the gateway listens (default 8443)'],
  ['--upstream <url>', 'upstream', 'the app behind it (default http://127.0.0.1:8080)'],
  ['--server-name <name>', 'serverName', 'server_name of the site'],
  ['--out <dir>', 'out', 'write the config, CA, CRL and a new gateway certificate and key there'],
  ['--data-dir <dir>', 'dataDir', "the server's data dir (its CAs go into the config)"],
  ['--server <url>', 'server', 'the server URL gateway sync will use'],
  ['--cert <file>', 'cert', "the gateway's own TLS certificate (with --key) instead of a new one"],
  ['--key <file>', 'key', 'its key'],
  ['--root-crl <file>', 'rootCrl', 'the root CRL, when the CA is imported'],
  ['--name <host>', 'name', 'a name of the new gateway certificate (repeat for more)'],
];
const REPEATABLE = new Set(['name']);
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

const gatewayCommands: Cmd[] = [
  {
    usage: 'gateway config <kind>',
    summary: 'print (or with --out write) an nginx or HAProxy mTLS gateway config; kind: nginx or haproxy',
    options: GATEWAY_CONFIG_OPTIONS.map(([flag, key, help]) => (REPEATABLE.has(key) ? new Option(flag, help).argParser(collect) : new Option(flag, help))),
    examples: ['gateway config nginx --listen 0.0.0.0:443 --upstream http://127.0.0.1:8080 --out /etc/latchkey-gw --data-dir /var/lib/latchkey', 'gateway config haproxy --data-dir /var/lib/latchkey'],
    async run(ctx, [kind]) {
      const words = GATEWAY_CONFIG_OPTIONS.flatMap(([flag, key]) => {
        const v = ctx.o[key];
        const name = flag.split(' ')[0]!;
        return v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((x) => [name, String(x)]);
      });
      const { gatewayConfigCommand } = await import('../gateway/gateway-config.js');
      return gatewayConfigCommand([kind!, ...words], '', ctx.out);
    },
  },
  {
    usage: 'gateway token create',
    summary: 'create a token for `gateway sync`; the secret alone goes to stdout, shown once',
    options: [new Option('--name <name>', 'which gateway the token is for'), ...adminOptions()],
    examples: ['gateway token create --name edge-1 --data-dir /var/lib/latchkey', 'GW_TOKEN=$(latchkey-server gateway token create --name edge-1 --data-dir /var/lib/latchkey)'],
    async run(ctx) {
      const name = need(ctx.o, 'name', '--name', 'which gateway the token is for');
      const { api, p } = admin(ctx);
      const r = await api.call<GatewayTokenCreateResponse>('POST', '/v1/admin/gateway-tokens', { name });
      p.secret(r, r.token, () => `gateway token ${r.info.id} "${r.info.name}"; shown once, store it now; use it as LATCHKEY_GATEWAY_TOKEN for \`gateway sync\``);
      return 0;
    },
  },
  {
    usage: 'gateway token list',
    summary: 'list gateway tokens',
    options: adminOptions(),
    examples: ['gateway token list --data-dir /var/lib/latchkey'],
    async run(ctx) {
      const { api, p } = admin(ctx);
      const r = await api.call<{ items: GatewayTokenInfo[] }>('GET', '/v1/admin/gateway-tokens');
      p.print(r, () => table(r.items, ['id', 'name', 'createdAt', 'createdBy', 'revokedAt']));
      return 0;
    },
  },
  {
    usage: 'gateway token revoke <id>',
    summary: 'revoke a gateway token; its event streams are closed',
    options: adminOptions(),
    examples: ['gateway token revoke 7a0e… --data-dir /var/lib/latchkey'],
    async run(ctx, [id]) {
      const { api, p } = admin(ctx);
      await api.call('DELETE', `/v1/admin/gateway-tokens/${encodeURIComponent(id!)}`);
      p.print({ revoked: id }, () => `gateway token ${id} revoked; its event streams are closed`);
      return 0;
    },
  },
  {
    usage: 'gateway sync',
    summary: "keep a gateway's CRL file (issuing + root CRLs, PEM) current from the server's event stream",
    options: [
      new Option('--server <url>', 'the https://HOST:PORT of latchkey-server'),
      new Option('--token-file <file>', 'the gateway token (else LATCHKEY_GATEWAY_TOKEN)'),
      new Option('--token <token>', 'the gateway token on the command line (seen in ps)'),
      new Option('--ca-file <file>', 'the root CA to trust for --server (PEM)'),
      new Option('--crl-file <file>', 'the CRL file the gateway reads (nginx ssl_crl, HAProxy crl-file)'),
      new Option('--reload <cmd>', 'command that makes the gateway re-read the file, e.g. "nginx -s reload"'),
      new Option('--haproxy-socket <path>', "HAProxy's runtime API socket: the CRL is updated without a reload"),
      new Option('--status-file <file>', 'JSON: ok | failing | stopped, the CRL numbers applied, the error'),
      new Option('--once', 'fetch, write, reload once and exit'),
      new Option('--resync-interval <duration>', 'full resync period (default 5m)').argParser(duration),
    ],
    examples: [
      'gateway sync --server https://latchkey.example.com:8443 --token-file /etc/latchkey-gw/token --ca-file /etc/latchkey-gw/ca.pem --crl-file /etc/latchkey-gw/crl.pem --reload "nginx -s reload"',
      'gateway sync --server https://latchkey.example.com:8443 --crl-file /etc/haproxy/crl.pem --haproxy-socket /run/haproxy/admin.sock --once',
    ],
    async run(ctx) {
      const { o, env } = ctx;
      const server = need(o, 'server', '--server', 'the https://HOST:PORT of latchkey-server');
      if (str(o, 'token') && str(o, 'tokenFile')) throw new UsageError('give the gateway token once: --token-file F or --token T');
      if (str(o, 'token')) ctx.err('latchkey-server: warning: --token is visible to every user in `ps`; prefer --token-file F or LATCHKEY_GATEWAY_TOKEN');
      const { readGatewayTokenFile } = await import('../gateway/gateway-token-file.js');
      const token = str(o, 'tokenFile') ? readGatewayTokenFile(str(o, 'tokenFile')!) : (str(o, 'token') ?? env.LATCHKEY_GATEWAY_TOKEN);
      if (!token) throw new UsageError('no gateway token: give --token-file F or set LATCHKEY_GATEWAY_TOKEN (from `latchkey-server gateway token create`)');
      const crlFile = need(o, 'crlFile', '--crl-file', 'the CRL file the gateway reads (nginx ssl_crl, HAProxy crl-file)');
      const reload = str(o, 'reload');
      const haproxySocket = str(o, 'haproxySocket');
      if (!reload && !haproxySocket) throw new UsageError('how does the gateway pick up the new CRL file? give --reload "CMD" (e.g. "nginx -s reload") or --haproxy-socket PATH');
      if (haproxySocket && /\s/.test(crlFile)) throw new UsageError('with --haproxy-socket, the --crl-file path must have no spaces (it is a word on the HAProxy command line)');
      if (!/^https?:\/\//.test(server)) throw new UsageError('--server is a URL like https://latchkey.example.com:8443');
      const caFile = str(o, 'caFile');
      const { gatewaySyncCommand } = await import('../gateway/gateway-sync-node.js');
      return gatewaySyncCommand(
        {
          server,
          token,
          ...(caFile ? { ca: readFileSync(caFile, 'utf8') } : {}),
          crlFile,
          ...(reload ? { reload } : {}),
          ...(haproxySocket ? { haproxySocket } : {}),
          ...(str(o, 'statusFile') ? { statusFile: str(o, 'statusFile')! } : {}),
          log: (l, level) => ctx.err(`${new Date().toISOString()} gateway sync: ${level ? `${level}: ` : ''}${l}`),
        },
        { once: !!o.once, resyncSeconds: str(o, 'resyncInterval') ? durationSeconds(str(o, 'resyncInterval')!)! : 300 },
      );
    },
  },
];

export const SERVER_CLI: ProgramSpec<ServerCliCtx> = {
  name: 'latchkey-server',
  summary: 'enrollment server and issuing CA for device mTLS',
  globals: [new Option('--debug', 'on failure, print the stack trace too')],
  groups: {
    token: 'enrollment tokens: create, list, revoke',
    groups: 'device groups and their policy (certificate lifetime, approval)',
    devices: 'the device inventory: list, show, approve, deny, revoke, renew-now, online',
    audit: 'the audit log',
    gateway: 'mTLS gateways: config, tokens, CRL sync',
    'gateway token': 'tokens for `gateway sync`',
  },
  commands: [init, start, ...tokenCommands, ...groupCommands, ...deviceCommands, auditList, ...gatewayCommands],
  epilog: `Admin commands reach the running server with --data-dir D (URL, CA and
admin token from it), or --server URL [--ca-file F] and LATCHKEY_ADMIN_TOKEN.
Environment: LATCHKEY_CA_PASSPHRASE, LATCHKEY_DATABASE_URL, LATCHKEY_LISTEN,
LATCHKEY_ADMIN_TOKEN, LATCHKEY_SERVER, LATCHKEY_GATEWAY_TOKEN.
Exit codes: 0 ok, 1 failure, 2 usage or configuration error.
Every command takes --help, e.g. latchkey-server devices revoke --help.`,
};
