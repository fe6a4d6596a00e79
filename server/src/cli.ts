#!/usr/bin/env node
/**
 * latchkey-server: init, start, and admin subcommands (through the admin
 * API). Exit codes: 0 ok, 1 failure, 2 usage or configuration error.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Device, GatewayTokenCreateResponse, GatewayTokenInfo, TokenCreateResponse, TokenInfo } from '@latchkey/protocol';
import { ApiError, UsageError, adminClientFrom } from './admin-client.js';
import { ConfigError } from './config/config-load.js';
import { terminalSafe } from './util/terminal-text.js';
// init, start and the gateway commands are imported where used: admin commands stay quick to start
// (they load the admin client only, not fastify, the database drivers and the CA).

const USAGE = `latchkey-server — enrollment server and issuing CA for device mTLS

Usage:
  latchkey-server init --data-dir D --org NAME --url https://HOST:PORT
                       [--listen HOST:PORT] [--trust-domain D] [--database-url URL]
                       [--key-type p256|p384] [--import-ca CERT KEY --import-root ROOT]
  latchkey-server start --data-dir D [--listen HOST:PORT] [--database-url URL]
  latchkey-server token create [--uses N] [--ttl 24h] [--group NAME] [--json]
  latchkey-server token list [--json] | token revoke ID
  latchkey-server groups set NAME --lifetime 24h [--require-approval] | groups list [--json]
  latchkey-server devices list [--status S] [--group G] [--json]
  latchkey-server devices online [--json]          agents connected to the control channel now (any replica)
  latchkey-server devices renew-now ID             ask a device's agent to renew at once
  latchkey-server devices show ID | approve ID | deny ID [--reason TEXT] | revoke ID [--reason R] [--json]
  latchkey-server audit list [--limit N] [--action A] [--json]
  latchkey-server gateway config nginx|haproxy [--listen HOST:PORT] [--upstream URL] [--server-name NAME] [--out DIR]
  latchkey-server gateway token create --name N [--json] | gateway token list [--json] | gateway token revoke ID
  latchkey-server gateway sync --server URL [--token-file F] [--ca-file ROOT.pem] --crl-file F
                               (--reload "CMD" | --haproxy-socket PATH [--reload "CMD"]) [--once] [--resync-interval 5m]
                               [--status-file F]  (JSON: ok | failing | stopped, the CRL numbers applied, the error)
                               keeps F (issuing + root CRLs, PEM) current from the event stream;
                               token from --token-file, LATCHKEY_GATEWAY_TOKEN or --token (seen in ps);
                               with both, HAProxy is reloaded when its runtime API cannot take the CRL

Admin subcommands reach the running server with --data-dir D (URL, CA and
admin token from it), or --server URL [--ca-file F] and LATCHKEY_ADMIN_TOKEN.
Environment: LATCHKEY_CA_PASSPHRASE, LATCHKEY_DATABASE_URL, LATCHKEY_LISTEN.
`;

const COMMON = {
  'data-dir': { type: 'string' },
  server: { type: 'string' },
  'ca-file': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

type Values = Record<string, string | boolean | string[] | undefined>;

function parse(args: string[], options: ParseArgsConfig['options'], positionals = 0): { values: Values; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
    if (r.positionals.length > positionals) throw new UsageError(`unexpected argument "${r.positionals[positionals]}"`);
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message);
  }
}

const str = (v: Values, k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
const need = (v: Values, k: string, what: string): string => {
  const s = str(v, k);
  if (!s) throw new UsageError(`--${k} is required (${what})`);
  return s;
};

function table(rows: Record<string, unknown>[], cols: string[]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((r) => cols.map((c) => (r[c] === null || r[c] === undefined ? '-' : terminalSafe(String(r[c])))));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

const DURATION = /^([1-9][0-9]{0,5})([smhd])$/;
function seconds(s: string, what: string): number {
  const m = DURATION.exec(s);
  if (!m) throw new UsageError(`${what} "${s}" must look like 30m, 24h or 7d`);
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2]!]!;
}

async function main(argv: string[], out: (s: string) => void): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(USAGE);
    return cmd ? 0 : 2;
  }
  const env = process.env;
  if (cmd === 'init') {
    const { values: v } = parse(argv.slice(1), {
      org: { type: 'string' },
      url: { type: 'string' },
      listen: { type: 'string' },
      'trust-domain': { type: 'string' },
      'database-url': { type: 'string' },
      'key-type': { type: 'string' },
      'import-ca': { type: 'string', multiple: true },
      'import-root': { type: 'string' },
    }, 1);
    const importCa = v['import-ca'] as string[] | undefined;
    const keyType = str(v, 'key-type') ?? 'p256';
    if (!['p256', 'p384'].includes(keyType)) throw new UsageError('--key-type is p256 or p384');
    // `--import-ca CERT KEY`: the key arrives as the next positional.
    let ca: { cert: string; key: string; root: string } | undefined;
    if (importCa) {
      const rawArgs = argv.slice(1);
      const i = rawArgs.indexOf('--import-ca');
      const cert = rawArgs[i + 1];
      const key = rawArgs[i + 2];
      if (!cert || !key || key.startsWith('--')) throw new UsageError('--import-ca takes two files: CERT KEY');
      ca = { cert, key, root: need(v, 'import-root', 'the root the imported CA chains to') };
    }
    const { initDataDir } = await import('./init.js');
    const r = await initDataDir({
      dataDir: need(v, 'data-dir', 'where the CA, config and database live'),
      org: need(v, 'org', 'organization name for certificate subjects'),
      url: need(v, 'url', 'the https://HOST:PORT devices will use'),
      ...(str(v, 'listen') ? { listen: str(v, 'listen')! } : {}),
      ...(str(v, 'trust-domain') ? { trustDomain: str(v, 'trust-domain')! } : {}),
      ...(str(v, 'database-url') ? { databaseUrl: str(v, 'database-url')! } : {}),
      keyType: keyType === 'p384' ? 'P-384' : 'P-256',
      ...(ca ? { importCa: { ...ca, ...(env.LATCHKEY_IMPORT_KEY_PASSPHRASE ? { keyPassphrase: env.LATCHKEY_IMPORT_KEY_PASSPHRASE } : {}) } } : {}),
      ...(env.LATCHKEY_CA_PASSPHRASE ? { passphrase: env.LATCHKEY_CA_PASSPHRASE } : {}),
    });
    if (v.json) {
      out(JSON.stringify({ dataDir: r.dataDir, url: r.config.url, rootFingerprint: r.rootFingerprint, adminTokenFile: `${r.dataDir}/admin-token`, passphraseFile: r.passphraseFile ?? null }, null, 2));
      return 0;
    }
    out(`Initialized ${r.dataDir}

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
  }

  if (cmd === 'start') {
    const { values: v } = parse(argv.slice(1), { listen: { type: 'string' }, 'database-url': { type: 'string' } });
    const dataDir = need(v, 'data-dir', 'the directory made by `latchkey-server init`');
    const { startServer } = await import('./start.js');
    const s = await startServer(dataDir, env, { ...(str(v, 'listen') ? { listen: str(v, 'listen')! } : {}), ...(str(v, 'database-url') ? { databaseUrl: str(v, 'database-url')! } : {}) }, (l) => process.stderr.write(l + '\n'));
    process.stderr.write(`Enroll a first device:
  latchkey-server token create --data-dir ${dataDir}
  latchkey enroll --server ${s.url} --token <token> --ca-fingerprint <root fingerprint from init>   (the agent)
or with curl + openssl, see README.md "Enroll with curl and openssl".
`);
    await new Promise<void>((resolve) => {
      const stop = (sig: string): void => {
        process.stderr.write(`${sig}: finishing in-flight requests and shutting down\n`);
        void s.close().then(resolve, (e: unknown) => {
          process.stderr.write(`shutdown failed: ${(e as Error).message}\n`);
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    return 0;
  }

  const admin = (v: Values) => adminClientFrom({ ...(str(v, 'data-dir') ? { dataDir: str(v, 'data-dir')! } : {}), ...(str(v, 'server') ? { server: str(v, 'server')! } : {}), ...(str(v, 'ca-file') ? { caFile: str(v, 'ca-file')! } : {}), env });
  // Human output carries what devices reported (names, facts): no terminal controls or bidi overrides
  // reach the terminal. Values are made safe where they are laid out (table cells, fields), and the whole
  // text once more here for the names inside sentences. --json stays exact.
  const print = (v: Values, data: unknown, human: () => string): void => out(v.json ? JSON.stringify(data, null, 2) : terminalSafe(human(), { multiline: true }));

  if (cmd === 'token') {
    if (sub === 'create') {
      const { values: v } = parse(rest, { uses: { type: 'string' }, ttl: { type: 'string' }, group: { type: 'string' } });
      const uses = str(v, 'uses') ? Number(str(v, 'uses')) : undefined;
      if (uses !== undefined && !(Number.isInteger(uses) && uses >= 1)) throw new UsageError('--uses must be a positive integer');
      if (str(v, 'ttl')) seconds(str(v, 'ttl')!, '--ttl');
      const r = await admin(v).call<TokenCreateResponse>('POST', '/v1/admin/tokens', { ...(uses ? { uses } : {}), ...(str(v, 'ttl') ? { ttl: str(v, 'ttl') } : {}), ...(str(v, 'group') ? { group: str(v, 'group') } : {}) });
      print(v, r, () => `${r.token}\n\n(token ${r.info.id}: group ${r.info.group}, ${r.info.uses} use(s), expires ${r.info.expiresAt}; shown once, store it now)`);
      return 0;
    }
    if (sub === 'list') {
      const { values: v } = parse(rest, {});
      const r = await admin(v).call<{ items: TokenInfo[] }>('GET', '/v1/admin/tokens');
      print(v, r, () => table(r.items.map((t) => ({ ...t, used: `${t.usedCount}/${t.uses}` })), ['id', 'group', 'used', 'expiresAt', 'revokedAt']));
      return 0;
    }
    if (sub === 'revoke') {
      const { values: v, positionals } = parse(rest, {}, 1);
      const id = positionals[0];
      if (!id) throw new UsageError('token revoke needs the token ID (from `token list`)');
      await admin(v).call('DELETE', `/v1/admin/tokens/${encodeURIComponent(id)}`);
      print(v, { revoked: id }, () => `token ${id} revoked`);
      return 0;
    }
    throw new UsageError('token create | list | revoke ID');
  }

  if (cmd === 'groups') {
    if (sub === 'set') {
      const { values: v, positionals } = parse(rest, { lifetime: { type: 'string' }, 'require-approval': { type: 'boolean' } }, 1);
      const name = positionals[0];
      if (!name) throw new UsageError('groups set needs a group NAME');
      const body = { certLifetimeSeconds: seconds(need(v, 'lifetime', 'certificate lifetime, e.g. 24h'), '--lifetime'), requireApproval: !!v['require-approval'] };
      const r = await admin(v).call('PUT', `/v1/admin/groups/${encodeURIComponent(name)}`, body);
      print(v, r, () => `group ${name}: certificates for ${body.certLifetimeSeconds} s, approval ${body.requireApproval ? 'required' : 'not required'}`);
      return 0;
    }
    if (sub === 'list') {
      const { values: v } = parse(rest, {});
      const r = await admin(v).call<{ items: Record<string, unknown>[] }>('GET', '/v1/admin/groups');
      print(v, r, () => table(r.items, ['name', 'certLifetimeSeconds', 'requireApproval']));
      return 0;
    }
    throw new UsageError('groups set NAME --lifetime D [--require-approval] | groups list');
  }

  if (cmd === 'devices') {
    if (sub === 'list') {
      const { values: v } = parse(rest, { status: { type: 'string' }, group: { type: 'string' }, q: { type: 'string' }, limit: { type: 'string' } });
      const qs = new URLSearchParams();
      for (const k of ['status', 'group', 'q', 'limit']) if (str(v, k)) qs.set(k, str(v, k)!);
      const r = await admin(v).call<{ items: Device[]; nextCursor: string | null }>('GET', `/v1/admin/devices${qs.size ? `?${qs}` : ''}`);
      print(v, r, () => table(r.items.map((d) => ({ ...d, serial: d.certificate?.serial, notAfter: d.certificate?.notAfter, online: d.online === undefined ? '' : d.online ? 'yes' : 'no' })), ['id', 'name', 'status', 'group', 'online', 'lastSeen', 'serial', 'notAfter']));
      return 0;
    }
    if (sub === 'renew-now') {
      const { values: v, positionals } = parse(rest, {}, 1);
      if (!positionals[0]) throw new UsageError('devices renew-now needs a device ID');
      const r = await admin(v).call<{ deviceId: string; requestedAt: string }>('POST', `/v1/admin/devices/${encodeURIComponent(positionals[0])}/renew-now`);
      print(v, r, () => `asked device ${r.deviceId} to renew now (it does so at once if its agent is connected)`);
      return 0;
    }
    if (sub === 'online') {
      const { values: v } = parse(rest, {});
      const r = await admin(v).call<{ items: Record<string, unknown>[]; nextCursor: string | null }>('GET', '/v1/admin/devices/online');
      print(v, r, () => (r.items.length ? table(r.items, ['deviceId', 'since', 'agentVersion', 'serial', 'remote', 'replica']) : 'no agent is connected now'));
      return 0;
    }
    const { values: v, positionals } = parse(rest, { reason: { type: 'string' } }, 1);
    const id = positionals[0];
    if (!['show', 'approve', 'deny', 'revoke'].includes(sub ?? '')) throw new UsageError('devices list | online | show ID | approve ID | deny ID [--reason TEXT] | revoke ID [--reason R]');
    if (!id) throw new UsageError(`devices ${sub} needs a device ID (from \`devices list\`)`);
    const path = `/v1/admin/devices/${encodeURIComponent(id)}`;
    if (sub === 'show') {
      const r = await admin(v).call<Device & { certificates: Record<string, unknown>[] }>('GET', path);
      print(v, r, () => {
        const { certificates, facts, ...d } = r;
        return [
          ...Object.entries(d).map(([k, val]) => `${k.padEnd(17)} ${terminalSafe(typeof val === 'object' && val !== null ? JSON.stringify(val) : String(val ?? '-'))}`),
          `${'facts'.padEnd(17)} ${facts ? terminalSafe(JSON.stringify(facts)) : '-'}`,
          '',
          table(certificates, ['serial', 'kind', 'notBefore', 'notAfter', 'revokedAt']),
        ].join('\n');
      });
      return 0;
    }
    if (sub === 'approve') {
      const r = await admin(v).call<Device>('POST', `${path}/approve`);
      print(v, r, () => `device ${r.id} (${r.name}) approved; it will receive its certificate on its next poll`);
      return 0;
    }
    if (sub === 'deny') {
      const why = str(v, 'reason');
      const r = await admin(v).call<Device>('POST', `${path}/deny`, why ? { reason: why } : {});
      print(v, r, () => `device ${r.id} (${r.name}) denied; its agent is told on its next poll, and the same key and token will not be accepted again`);
      return 0;
    }
    const reason = str(v, 'reason') ?? 'unspecified';
    const r = await admin(v).call<{ device: Device; serials: string[]; crlNumber: number | null; alreadyRevoked: boolean }>('POST', `${path}/revoke`, { reason });
    const delivered = r.crlNumber === null ? 'the CRL and the notices are retried by the server every few seconds' : `CRL #${r.crlNumber} lists it`;
    print(v, r, () =>
      r.alreadyRevoked
        ? `device ${r.device.id} (${r.device.name}) was already revoked (${r.device.revocationReason ?? 'unspecified'}) at ${r.device.revokedAt}; announced again: ${delivered}`
        : `device ${r.device.id} (${r.device.name}) revoked (${reason}); ${r.serials.length} certificate(s) revoked; ${delivered}`,
    );
    return 0;
  }

  if (cmd === 'gateway' && sub === 'config') {
    const { gatewayConfigCommand } = await import('./gateway/gateway-config.js');
    return gatewayConfigCommand(rest, '', out);
  }

  if (cmd === 'gateway' && sub === 'token') {
    const [op, ...args] = rest;
    if (op === 'create') {
      const { values: v } = parse(args, { name: { type: 'string' } });
      const r = await admin(v).call<GatewayTokenCreateResponse>('POST', '/v1/admin/gateway-tokens', { name: need(v, 'name', 'which gateway the token is for') });
      print(v, r, () => `${r.token}\n\n(gateway token ${r.info.id} "${r.info.name}"; shown once, store it now; use it as LATCHKEY_GATEWAY_TOKEN for \`gateway sync\`)`);
      return 0;
    }
    if (op === 'list') {
      const { values: v } = parse(args, {});
      const r = await admin(v).call<{ items: GatewayTokenInfo[] }>('GET', '/v1/admin/gateway-tokens');
      print(v, r, () => table(r.items, ['id', 'name', 'createdAt', 'createdBy', 'revokedAt']));
      return 0;
    }
    if (op === 'revoke') {
      const { values: v, positionals } = parse(args, {}, 1);
      const id = positionals[0];
      if (!id) throw new UsageError('gateway token revoke needs the token ID (from `gateway token list`)');
      await admin(v).call('DELETE', `/v1/admin/gateway-tokens/${encodeURIComponent(id)}`);
      print(v, { revoked: id }, () => `gateway token ${id} revoked; its event streams are closed`);
      return 0;
    }
    throw new UsageError('gateway token create --name N | list | revoke ID');
  }

  if (cmd === 'gateway' && sub === 'sync') {
    const { values: v } = parse(rest, { token: { type: 'string' }, 'token-file': { type: 'string' }, 'crl-file': { type: 'string' }, reload: { type: 'string' }, 'haproxy-socket': { type: 'string' }, 'status-file': { type: 'string' }, once: { type: 'boolean' }, 'resync-interval': { type: 'string' } });
    const server = need(v, 'server', 'the https://HOST:PORT of latchkey-server');
    if (str(v, 'token') && str(v, 'token-file')) throw new UsageError('give the gateway token once: --token-file F or --token T');
    if (str(v, 'token')) process.stderr.write('latchkey-server: warning: --token is visible to every user in `ps`; prefer --token-file F or LATCHKEY_GATEWAY_TOKEN\n');
    const { readGatewayTokenFile } = await import('./gateway/gateway-token-file.js');
    const token = str(v, 'token-file') ? readGatewayTokenFile(str(v, 'token-file')!) : (str(v, 'token') ?? env.LATCHKEY_GATEWAY_TOKEN);
    if (!token) throw new UsageError('no gateway token: give --token-file F or set LATCHKEY_GATEWAY_TOKEN (from `latchkey-server gateway token create`)');
    const crlFile = need(v, 'crl-file', 'the CRL file the gateway reads (nginx ssl_crl, HAProxy crl-file)');
    const reload = str(v, 'reload');
    const haproxySocket = str(v, 'haproxy-socket');
    if (!reload && !haproxySocket) throw new UsageError('how does the gateway pick up the new CRL file? give --reload "CMD" (e.g. "nginx -s reload") or --haproxy-socket PATH');
    if (haproxySocket && /\s/.test(crlFile)) throw new UsageError('with --haproxy-socket, the --crl-file path must have no spaces (it is a word on the HAProxy command line)');
    if (!/^https?:\/\//.test(server)) throw new UsageError('--server is a URL like https://latchkey.example.com:8443');
    const caFile = str(v, 'ca-file');
    const { gatewaySyncCommand } = await import('./gateway/gateway-sync-node.js');
    return gatewaySyncCommand(
      {
        server,
        token,
        ...(caFile ? { ca: readFileSync(caFile, 'utf8') } : {}),
        crlFile,
        ...(reload ? { reload } : {}),
        ...(haproxySocket ? { haproxySocket } : {}),
        ...(str(v, 'status-file') ? { statusFile: str(v, 'status-file')! } : {}),
        log: (l, level) => process.stderr.write(`${new Date().toISOString()} gateway sync: ${level ? `${level}: ` : ''}${l}\n`),
      },
      { once: !!v.once, resyncSeconds: str(v, 'resync-interval') ? seconds(str(v, 'resync-interval')!, '--resync-interval') : 300 },
    );
  }

  if (cmd === 'audit' && sub === 'list') {
    const { values: v } = parse(rest, { limit: { type: 'string' }, action: { type: 'string' }, target: { type: 'string' } });
    const qs = new URLSearchParams();
    for (const k of ['limit', 'action', 'target']) if (str(v, k)) qs.set(k, str(v, k)!);
    const r = await admin(v).call<{ items: { details: unknown }[] }>('GET', `/v1/admin/audit${qs.size ? `?${qs}` : ''}`);
    print(v, r, () => table(r.items.map((e) => ({ ...e, details: JSON.stringify(e.details) })), ['id', 'at', 'actor', 'action', 'target', 'details']));
    return 0;
  }
  throw new UsageError(`unknown command "${[cmd, sub].filter(Boolean).join(' ')}"; see latchkey-server --help`);
}

main(process.argv.slice(2), (s) => process.stdout.write(s.endsWith('\n') ? s : s + '\n')).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Error messages can quote what a client sent (an id, a name): shown as safely as the tables.
    const e = err instanceof Error ? Object.assign(err, { message: terminalSafe(err.message, { multiline: true }) }) : err;
    if (e instanceof UsageError) {
      process.stderr.write(`latchkey-server: ${e.message}\n`);
      process.exit(2);
    }
    if (e instanceof ConfigError) {
      process.stderr.write(`latchkey-server: ${e.message}\n`);
      process.exit(2);
    }
    if (e instanceof ApiError) {
      process.stderr.write(`latchkey-server: ${e.message} (${e.code})\n`);
      process.exit(1);
    }
    process.stderr.write(`latchkey-server: ${(e as Error).message ?? String(e)}\n`);
    process.exit(1);
  },
);
