/** `latchkey-server gateway config | token | sync`. */
import { readFileSync } from 'node:fs';
import { Option } from '@latchkey/cli';
import type { GatewayTokenCreateResponse, GatewayTokenInfo } from '@latchkey/protocol';
import { UsageError } from '../admin-client.js';
import { admin, adminOptions, duration, need, str, type Cmd } from './cli-context.js';
import { durationSeconds, table } from './cli-output.js';

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
  ['--require-attested', 'requireAttested', 'admit only TPM-attested devices (others get 403 and why)'],
];
const REPEATABLE = new Set(['name']);
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export const gatewayCommands: Cmd[] = [
  {
    usage: 'gateway config <kind>',
    summary: 'print (or with --out write) an nginx or HAProxy mTLS gateway config; kind: nginx or haproxy',
    options: GATEWAY_CONFIG_OPTIONS.map(([flag, key, help]) => (REPEATABLE.has(key) ? new Option(flag, help).argParser(collect) : new Option(flag, help))),
    examples: ['gateway config nginx --listen 0.0.0.0:443 --upstream http://127.0.0.1:8080 --out /etc/latchkey-gw --data-dir /var/lib/latchkey', 'gateway config haproxy --data-dir /var/lib/latchkey', 'gateway config nginx --require-attested --listen 0.0.0.0:443 --upstream http://127.0.0.1:8080 --out /etc/latchkey-gw --data-dir /var/lib/latchkey'],
    async run(ctx, [kind]) {
      const words = GATEWAY_CONFIG_OPTIONS.flatMap(([flag, key]) => {
        const v = ctx.o[key];
        const name = flag.split(' ')[0]!;
        if (v === true) return [name];
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
      const { cleanGatewayToken, readGatewayTokenFile } = await import('../gateway/gateway-token-file.js');
      const token = str(o, 'tokenFile')
        ? readGatewayTokenFile(str(o, 'tokenFile')!)
        : str(o, 'token') !== undefined
          ? cleanGatewayToken(str(o, 'token')!, '--token')
          : env.LATCHKEY_GATEWAY_TOKEN
            ? cleanGatewayToken(env.LATCHKEY_GATEWAY_TOKEN, 'LATCHKEY_GATEWAY_TOKEN')
            : undefined;
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

