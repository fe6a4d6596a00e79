/**
 * `latchkey-server gateway config nginx|haproxy`: a working mTLS gateway
 * configuration for the devices of this server, and (with --out DIR) the
 * files it refers to: the CA bundle, the CRLs of every CA in the chain, and
 * the gateway's own TLS certificate and key (issued here for the gateway's
 * names, see gateway-cert.ts; never a copy of the server's).
 *
 * `--upstream http(s)://…` makes an HTTP gateway (headers with the device
 * id); `--upstream tcp://HOST:PORT` a TCP one for `latchkey connect` (SSH,
 * RDP, databases): nginx `stream`, HAProxy `mode tcp`.
 *
 * The renderers are pure (options in, text out); the command around them
 * reads the data dir, fetches the current CRLs from the running server and
 * writes the files.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Certificate, PEM, USER_EMAIL_PATTERN, certificateToPem, crlToPem, parseCertificate, parseCrl, pemDecodeAll, subjectString, verifyCrl } from '@latchkey/pki';
import { PATHS, TPM_ATTESTED_OU, hostForUrl, parseHostPort } from '@latchkey/protocol';
import { UsageError } from '../admin-client.js';
import { FILES, writeFileAtomic } from '../ca/ca-files.js';
import { CONFIG_FILE, localServerUrl } from '../config/config-load.js';
import { defaultGatewayNames, gatewayNames, issueGatewayCertificate } from './gateway-cert.js';

export type GatewayKind = 'nginx' | 'haproxy';

/** Header names the upstream application reads. */
export const GATEWAY_HEADERS = { deviceId: 'X-Latchkey-Device-Id', serial: 'X-Latchkey-Client-Serial', user: 'X-Latchkey-User' } as const;

/** Names of the files in the output directory. */
export const GATEWAY_FILES = {
  caBundle: 'ca.pem',
  crl: 'crl.pem',
  cert: 'gateway.crt.pem',
  key: 'gateway.key.pem',
  /** HAProxy wants certificate, chain and key in one file. */
  haproxyPem: 'gateway.pem',
  nginxSite: 'latchkey-gateway.conf',
  /** The TCP gateway's server, included inside `stream { }`. */
  nginxStreamSite: 'latchkey-gateway-stream.conf',
  nginxMain: 'nginx.conf',
  haproxy: 'haproxy.cfg',
  haproxySocket: 'haproxy.sock',
} as const;

/** Where the printed config expects its files when no --out is given. */
export const DEFAULT_GATEWAY_DIR = '/etc/latchkey-gateway';

/**
 * HAProxy buffer size. `set ssl crl-file` carries the whole CRL file in one
 * runtime-API command, which must fit in a buffer (default 16 kB, about 250
 * revoked certificates). 256 kB holds about 4,500; each live connection may
 * hold two buffers, so do not raise it further without need.
 */
export const HAPROXY_BUFSIZE = 262_144;

/** Every spelling of every X-Latchkey-* header name (HAProxy matches header names case-insensitively). */
export const LATCHKEY_HEADER_RE = '^x[-_]latchkey[-_]';

const UUID_RE = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/** What HAProxy's access log says of the client: device id, user (subject emailAddress), serial, verify result. */
const HAPROXY_LOG_IDENTITY = 'device=%[ssl_c_s_dn(UID)] user=%[ssl_c_s_dn(emailAddress)] serial=%[ssl_c_serial,hex] verify=%[ssl_c_verify]';

export interface Listen {
  /** Undefined: every address. */
  host: string | undefined;
  port: number;
}

export interface Upstream {
  /** tcp://: bytes through, no HTTP (nginx stream, HAProxy mode tcp). */
  stream: boolean;
  tls: boolean;
  /** As written in a URL: IPv6 in brackets. */
  host: string;
  port: number;
}

export interface GatewayConfigOptions {
  listen: Listen;
  upstream: Upstream;
  serverName: string;
  /** Absolute directory holding the files of GATEWAY_FILES. */
  dir: string;
  /** Where the gateway's TLS certificate came from, for the header comment. */
  certSource: string;
  /** The CA subjects, for the header comment. */
  caSubjects: readonly string[];
  generatedAt: Date;
  /**
   * `--require-attested`: admit only certificates of TPM-attested devices, whose subject carries
   * OU=TPM_ATTESTED_OU right after O = `org` (the server's config org, as its device certificates have it).
   */
  requireAttested?: { org: string } | undefined;
}

const SAFE_PATH = /^\/[A-Za-z0-9._/@+-]*$/;
const SAFE_NAME = /^[A-Za-z0-9*_.-]{1,253}$/;

/** `PORT` (every address) or `HOST:PORT` (the protocol's one parser); the host keeps IPv6 brackets, as nginx writes it. */
export function parseListen(s: string): Listen {
  const a = /^[0-9]{1,5}$/.test(s) ? { host: undefined, port: Number(s) } : parseHostPort(s);
  if (!a || !(a.port >= 1 && a.port <= 65535)) throw new UsageError(`--listen "${s}" must be PORT or HOST:PORT, e.g. 8443 or 0.0.0.0:8443`);
  return { host: a.host === undefined ? undefined : hostForUrl(a), port: a.port };
}

export function parseUpstream(s: string): Upstream {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new UsageError(`--upstream "${s}" is not a URL; give the application's address, e.g. http://127.0.0.1:8080, or tcp://10.0.0.5:22 for a TCP service`);
  }
  const extra = (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username || u.password;
  if (u.protocol === 'tcp:') {
    // A non-special scheme: the URL parser keeps the host as written and the port as given.
    if (extra || !u.hostname || !u.port) throw new UsageError(`--upstream tcp:// needs HOST:PORT and nothing else, e.g. tcp://10.0.0.5:22, got "${s}"`);
    return { stream: true, tls: false, host: u.hostname, port: Number(u.port) };
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || extra) {
    throw new UsageError(`--upstream must be http(s)://HOST[:PORT] with no path, or tcp://HOST:PORT, got "${s}"`);
  }
  const tls = u.protocol === 'https:';
  return { stream: false, tls, host: u.hostname, port: u.port ? Number(u.port) : tls ? 443 : 80 };
}

const listenNginx = (l: Listen): string => (l.host ? `${l.host}:${l.port}` : String(l.port));
const listenHaproxy = (l: Listen): string => `${l.host ? l.host.replace(/^\[|\]$/g, '') : ''}:${l.port}`;
const hostPort = (u: Upstream): string => `${u.host}:${u.port}`;
const bareHost = (u: Upstream): string => u.host.replace(/^\[|\]$/g, '');
const file = (o: GatewayConfigOptions, name: string): string => `${o.dir}/${name}`;

/**
 * A subject attribute value as OpenSSL prints it with XN_FLAG_RFC2253 (nginx's $ssl_client_s_dn,
 * HAProxy's ssl_c_s_dn(,0,rfc2253), `openssl x509 -nameopt RFC2253`): UTF-8, then `\,` `\+` `\"` `\\`
 * `\<` `\>` `\;` (RFC 2253 §2.4), `\#` and `\ ` first, `\ ` last, and control characters and every byte
 * past 0x7F as `\XX` (upper-case hex).
 */
export function rfc2253Value(v: string): string {
  const bytes = Buffer.from(v, 'utf8');
  let out = '';
  bytes.forEach((b, i) => {
    const c = String.fromCharCode(b);
    if (b > 0x7e || b < 0x20) out += `\\${b.toString(16).toUpperCase().padStart(2, '0')}`;
    else if (',+"\\<>;'.includes(c) || (i === 0 && (c === ' ' || c === '#')) || (i === bytes.length - 1 && c === ' ')) out += `\\${c}`;
    else out += c;
  });
  return out;
}

/**
 * A literal for a PCRE pattern that goes into both an nginx "…" string and a HAProxy '…' one unchanged:
 * letters, digits and spaces as they are, every other character as \xHH. (nginx turns \\ \" \' \t \r \n
 * inside quotes into something else; HAProxy's single quotes take nothing special but a quote.)
 */
function pcreLiteral(s: string): string {
  return [...s].map((c) => (/[A-Za-z0-9 ]/.test(c) ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)).join('');
}

/**
 * The whole subject DN (RFC 2253 as OpenSSL prints it: last RDN first) of an attested device certificate,
 * anchored at both ends: [emailAddress=<user>,]UID=<id>,CN=<name>,OU=<TPM_ATTESTED_OU>,O=<org>. The CN may
 * be anything whose commas are escaped (the server writes [A-Za-z0-9._-] only; an unescaped ',' or '+'
 * would start another RDN or attribute), so the OU and O are the attributes themselves, in their
 * places, and exactly so: nothing written into the CN, and no OU elsewhere or with another value, matches.
 */
export function attestedDnPattern(org: string): string {
  const cn = '(?:[^\\x5c,+]|\\x5c.)+';
  return `^(?:emailAddress=${USER_EMAIL_PATTERN},)?UID=${UUID_RE},CN=${cn},OU=${pcreLiteral(TPM_ATTESTED_OU)},O=${pcreLiteral(rfc2253Value(org))}$`;
}

/** What a device that is not TPM-attested reads (nginx and HAProxy, HTTP). */
export const NOT_ATTESTED_BODY = 'This device is not TPM-attested, and this gateway admits only TPM-attested devices: certificates whose key the server saw proven to be in the TPM of the device. Enroll it in a group with attestation tpm (latchkey-server groups set NAME --attestation tpm).';

function checkOptions(o: GatewayConfigOptions): void {
  // Everything below is pasted into a config file: refuse what could break out of a directive.
  if (!SAFE_PATH.test(o.dir)) throw new UsageError(`the output directory "${o.dir}" must be an absolute path of letters, digits and ._/@+-`);
  if (!SAFE_NAME.test(o.serverName)) throw new UsageError(`--server-name "${o.serverName}" must be a host name (or _)`);
  if (!/^[A-Za-z0-9.:[\]-]+$/.test(o.upstream.host)) throw new UsageError(`upstream host "${o.upstream.host}" is not a host name or address`);
}

function header(o: GatewayConfigOptions, kind: GatewayKind, run: string[]): string[] {
  const upstreamGets = o.upstream.stream
    ? [
        `# A TCP gateway (for \`latchkey connect\`): the service at ${hostPort(o.upstream)} gets the bytes and nothing else;`,
        '# the device id (the subject UID of the device certificate), its user (the subject emailAddress, when the device',
        '# is bound to one) and the certificate serial are in the access log.',
      ]
    : [
        `# The upstream receives ${GATEWAY_HEADERS.deviceId} (the device id: the subject UID of the device certificate, the`,
        `# same id as its SAN spiffe://…/device/<id>), ${GATEWAY_HEADERS.serial} (certificate serial, upper-case hex) and,`,
        `# when the device is bound to a user, ${GATEWAY_HEADERS.user} (the user's verified email: the subject emailAddress,`,
        '# the same address as the SAN email; absent for a device without a user).',
        '# Whatever a client sends in those headers, in any spelling (- or _, any case: CGI and WSGI read',
        '# X_Latchkey_Device_Id as HTTP_X_LATCHKEY_DEVICE_ID too), is removed before the real ones are set.',
      ];
  return [
    `# Latchkey mTLS gateway (${kind}), made by \`latchkey-server gateway config ${kind}\` at ${o.generatedAt.toISOString()}.`,
    ...run.map((l) => `# ${l}`),
    '#',
    '# Files:',
    `#   ${file(o, GATEWAY_FILES.caBundle)}  the CAs device certificates chain to: ${o.caSubjects.join('; ')}`,
    `#   ${file(o, GATEWAY_FILES.crl)}  CRLs of the issuing CA and of the root. OpenSSL checks every CA in the`,
    '#     chain when a CRL file is set (X509_V_FLAG_CRL_CHECK_ALL), so both must be there; and once a CRL is past',
    '#     its nextUpdate every client is refused. Keep it current (it is also how a revocation gets here):',
    kind === 'nginx'
      ? `#     latchkey-server gateway sync --server URL --token-file TOKEN --ca-file ${file(o, GATEWAY_FILES.caBundle)} --crl-file ${file(o, GATEWAY_FILES.crl)} --reload 'nginx -s reload'`
      : `#     latchkey-server gateway sync --server URL --token-file TOKEN --ca-file ${file(o, GATEWAY_FILES.caBundle)} --crl-file ${file(o, GATEWAY_FILES.crl)} --haproxy-socket ${file(o, GATEWAY_FILES.haproxySocket)} --reload 'systemctl reload haproxy'`,
    `#   ${file(o, kind === 'nginx' ? GATEWAY_FILES.cert : GATEWAY_FILES.haproxyPem)}  this gateway's TLS certificate${kind === 'nginx' ? ` (key: ${GATEWAY_FILES.key})` : ', chain and key'}: ${o.certSource}`,
    '#',
    ...upstreamGets,
  ];
}

/** nginx (http and stream): $latchkey_device_id and $latchkey_user from the client certificate's subject. */
function nginxIdentityMaps(): string[] {
  return [
    '# The device id is the subject UID (RFC 4519) of a Latchkey device certificate, and its user (if the device is',
    '# bound to one) the subject emailAddress (PKCS#9) after it: nginx cannot read SAN emails without njs.',
    '# $ssl_client_s_dn is RFC 2253, last RDN first: "emailAddress=<user>,UID=<id>,CN=…,O=…", or "UID=<id>,…".',
    '# Anchoring at ^ keeps an id or a user written into the CN or O from matching (OpenSSL escapes \',\' in values',
    "# but not '='); the user's pattern holds no ',' and nothing RFC 2253 escapes, as the CA issues no other.",
    'map $ssl_client_s_dn $latchkey_device_id {',
    '    default "";',
    `    "~^(?:emailAddress=${USER_EMAIL_PATTERN},)?UID=(?<latchkey_uid>${UUID_RE})(,|$)" $latchkey_uid;`,
    '}',
    '',
    '# Empty for a device without a user.',
    'map $ssl_client_s_dn $latchkey_user {',
    '    default "";',
    `    "~^emailAddress=(?<latchkey_email>${USER_EMAIL_PATTERN}),UID=${UUID_RE}(,|$)" $latchkey_email;`,
    '}',
  ];
}

/** nginx (http and stream), --require-attested: $latchkey_attested is 1 for an attested device's certificate only. */
function nginxAttestedMap(o: GatewayConfigOptions): string[] {
  if (!o.requireAttested) return [];
  return [
    '',
    `# --require-attested: only devices whose key a TPM attested. Their certificates (and no other: the server builds`,
    `# subjects, and a device's name, the CN, is only [A-Za-z0-9._-]) carry OU=${TPM_ATTESTED_OU} right after O.`,
    '# The whole DN is matched from ^ to $ in RFC 2253 as OpenSSL prints it, so the OU is the attribute itself in',
    "# its place: a CN written to look like it has its ',' escaped (\\,) and does not match, nor an OU elsewhere or",
    `# with another value. O is this server's org (${JSON.stringify(o.requireAttested.org)}), escaped as OpenSSL escapes it; every character`,
    '# but letters, digits and spaces is written \\xHH. If the org in config.json changes, run gateway config again.',
    'map $ssl_client_s_dn $latchkey_attested {',
    '    default 0;',
    `    "~${attestedDnPattern(o.requireAttested.org)}" 1;`,
    '}',
  ];
}

/** nginx (http and stream): mTLS against the CA bundle and CRLs, no session resumption. */
function nginxTls(o: GatewayConfigOptions, refused: string): string[] {
  return [
    `    ssl_certificate     ${file(o, GATEWAY_FILES.cert)};`,
    `    ssl_certificate_key ${file(o, GATEWAY_FILES.key)};`,
    '    ssl_protocols TLSv1.2 TLSv1.3;',
    '',
    '    # Only devices: a client certificate that chains to the issuing CA (depth 1) and the root (depth 2),',
    `    # checked against the CRLs of both. ${refused}`,
    '    ssl_verify_client on;',
    '    ssl_verify_depth 2;',
    `    ssl_client_certificate ${file(o, GATEWAY_FILES.caBundle)};`,
    `    ssl_crl ${file(o, GATEWAY_FILES.crl)};`,
    '',
    '    # No TLS session resumption. A resumed session (session id or ticket) skips certificate verification,',
    '    # so a device revoked after its first handshake could keep reconnecting on its old session for as long',
    '    # as the session lived, whatever the CRL says. Every connection makes a full handshake checked against',
    '    # the current CRL; "off" (not "none") also tells clients not to try.',
    '    ssl_session_cache off;',
    '    ssl_session_tickets off;',
    '    # TLS 1.3: OpenSSL would still send (stateful, here useless) NewSessionTickets; send none.',
    '    ssl_conf_command NumTickets 0;',
  ];
}

/**
 * The site part for nginx: for an HTTP upstream, include it inside `http { }`
 * (Debian: /etc/nginx/conf.d/); for tcp://, inside `stream { }`.
 */
export function renderNginxSite(o: GatewayConfigOptions): string {
  checkOptions(o);
  if (o.upstream.stream) return renderNginxStream(o);
  const upstreamScheme = o.upstream.tls ? 'https' : 'http';
  return [
    ...header(o, 'nginx', [
      'Include this file inside http { } (on Debian: copy it to /etc/nginx/conf.d/), or run it on its own with',
      `nginx -p ${o.dir} -c ${file(o, GATEWAY_FILES.nginxMain)} -g 'pid ${o.dir}/nginx.pid;' (written by --out).`,
    ]),
    '',
    ...nginxIdentityMaps(),
    ...nginxAttestedMap(o),
    '',
    `log_format latchkey_gateway '$remote_addr [$time_local] "$request" $status $body_bytes_sent device=$latchkey_device_id user=$latchkey_user serial=$ssl_client_serial verify=$ssl_client_verify';`,
    '',
    'upstream latchkey_app {',
    `    server ${hostPort(o.upstream)};`,
    '    keepalive 16;',
    '}',
    '',
    'server {',
    `    listen ${listenNginx(o.listen)} ssl;`,
    `    server_name ${o.serverName};`,
    '',
    ...nginxTls(o, 'A revoked or missing certificate gets 400 from nginx.'),
    '',
    '    # A verified certificate without a device id (not a device certificate, or issued before the UID was',
    '    # added to the profile: renewal fixes it) is not let through.',
    '    # A client header spelled with underscores (X_Latchkey_Device_Id) is one a CGI/WSGI app reads as',
    `    # ${GATEWAY_HEADERS.deviceId}: drop every header with an underscore (nginx's default, made explicit so an`,
    '    # http-level setting cannot turn it back on). The dash spellings, in any case, are replaced below.',
    '    underscores_in_headers off;',
    '    ignore_invalid_headers on;',
    '',
    '    if ($latchkey_device_id = "") {',
    '        return 403;',
    '    }',
    ...(o.requireAttested
      ? [
          '',
          '    # --require-attested: a device whose certificate does not say TPM-attested (see the map) gets 403 and why,',
          '    # as text/plain (an http block may set another default_type; proxied answers keep their own type).',
          '    default_type text/plain;',
          '    if ($latchkey_attested != 1) {',
          `        return 403 "${NOT_ATTESTED_BODY}\\n";`,
          '    }',
        ]
      : []),
    '',
    '    location / {',
    `        proxy_pass ${upstreamScheme}://latchkey_app;`,
    ...(o.upstream.tls
      ? [
          '        proxy_ssl_verify on;',
          '        proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;',
          '        proxy_ssl_server_name on;',
          `        proxy_ssl_name ${bareHost(o.upstream)};`,
        ]
      : []),
    '        proxy_http_version 1.1;',
    '        proxy_set_header Connection "";',
    '        proxy_set_header Host $host;',
    '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '        proxy_set_header X-Forwarded-Proto https;',
    '        # Set here, so a client cannot send its own (a header set here to "" is not sent, the client\'s neither).',
    `        proxy_set_header ${GATEWAY_HEADERS.deviceId} $latchkey_device_id;`,
    `        proxy_set_header ${GATEWAY_HEADERS.serial} $ssl_client_serial;`,
    `        proxy_set_header ${GATEWAY_HEADERS.user} $latchkey_user;`,
    '    }',
    '}',
    '',
  ].join('\n');
}

/** A complete nginx.conf around the site file, for running the gateway on its own (non-root friendly). */
/**
 * The TCP gateway in nginx's stream module: the same mTLS as the HTTP one;
 * a verified certificate without a device id is sent to an upstream whose
 * only server is down, so nginx closes the connection.
 */
function renderNginxStream(o: GatewayConfigOptions): string {
  return [
    ...header(o, 'nginx', [
      'Include this file inside stream { } in the main context of nginx.conf (Debian: apt-get install libnginx-mod-stream,',
      `which loads the module), or run it on its own with nginx -p ${o.dir} -c ${file(o, GATEWAY_FILES.nginxMain)} -g 'pid ${o.dir}/nginx.pid;'`,
      '(written by --out; it loads the module itself where nginx has it as a dynamic module).',
    ]),
    '',
    ...nginxIdentityMaps(),
    ...nginxAttestedMap(o),
    '',
    ...(o.requireAttested
      ? [
          '# Only a certificate of a TPM-attested device (its DN, matched whole, has the device id too) goes to the',
          '# service; any other verified certificate goes nowhere.',
          'map $latchkey_attested $latchkey_upstream {',
          '    1 latchkey_app;',
          '    default latchkey_refused;',
          '}',
        ]
      : [
          '# A verified certificate without a device id (not a device certificate, or issued before the UID was',
          '# added to the profile: renewal fixes it) goes nowhere.',
          'map $latchkey_device_id $latchkey_upstream {',
          '    "" latchkey_refused;',
          '    default latchkey_app;',
          '}',
        ]),
    '',
    `log_format latchkey_stream '$remote_addr [$time_local] $status $bytes_sent $bytes_received $session_time device=$latchkey_device_id user=$latchkey_user serial=$ssl_client_serial verify=$ssl_client_verify';`,
    '',
    'upstream latchkey_app {',
    `    server ${hostPort(o.upstream)};`,
    '}',
    'upstream latchkey_refused {',
    '    server 127.0.0.1:9 down;',
    '}',
    '',
    'server {',
    `    listen ${listenNginx(o.listen)} ssl;`,
    '',
    ...nginxTls(o, 'A revoked or missing certificate fails the TLS handshake.'),
    '',
    '    proxy_pass $latchkey_upstream;',
    '}',
    '',
  ].join('\n');
}

/**
 * Where nginx's stream module is, when it must be loaded: `nginx -V` says
 * `--with-stream=dynamic` (Debian, Ubuntu: libnginx-mod-stream) or
 * `--with-stream` (built in, e.g. nginx.org's packages). null: built in.
 * Without an nginx here (config written on another machine): Debian's path.
 */
export function nginxStreamModule(nginxV: string | undefined): string | null {
  const DEBIAN = '/usr/lib/nginx/modules/ngx_stream_module.so';
  if (nginxV === undefined) return DEBIAN;
  if (/(^|\s)--with-stream(\s|$)/.test(nginxV)) return null;
  const modules = /--modules-path=(\S+)/.exec(nginxV)?.[1] ?? `${(/--prefix=(\S+)/.exec(nginxV)?.[1] ?? '/usr/share/nginx').replace(/\/+$/, '')}/modules`;
  return `${modules.replace(/\/+$/, '')}/ngx_stream_module.so`;
}

/** `nginx -V` of the nginx on PATH (it prints to stderr), or undefined. */
function localNginxV(): string | undefined {
  try {
    return execFileSync('nginx', ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) || undefined;
  } catch (e) {
    const r = e as { stderr?: string; code?: string };
    return r.code === 'ENOENT' ? undefined : r.stderr || undefined;
  }
}

/**
 * A complete nginx.conf around the site file, for running the gateway on its
 * own (non-root friendly). A TCP gateway needs the stream module: `streamModule`
 * is the absolute path to load (see nginxStreamModule), null when built in.
 */
export function renderNginxMain(o: GatewayConfigOptions, streamModule: string | null = null): string {
  checkOptions(o);
  if (o.upstream.stream) {
    if (streamModule !== null && !SAFE_PATH.test(streamModule)) throw new UsageError(`the stream module path "${streamModule}" must be an absolute path of letters, digits and ._/@+-`);
    return [
      `# Standalone nginx for the Latchkey TCP gateway: nginx -p ${o.dir} -c ${file(o, GATEWAY_FILES.nginxMain)} -g 'pid ${o.dir}/nginx.pid;'`,
      '# Every path is absolute, so it runs from any directory and without root. pid and error_log are left to -g',
      "# (or nginx's defaults); add `user www-data;` when started as root.",
      ...(streamModule
        ? ['# The stream module is a dynamic module of this nginx (nginx -V: --with-stream=dynamic): load it.', `load_module ${streamModule};`]
        : ['# The stream module is built into this nginx (nginx -V: --with-stream); otherwise add load_module …/ngx_stream_module.so;']),
      'worker_processes auto;',
      'events {',
      '    worker_connections 1024;',
      '}',
      'stream {',
      `    include ${file(o, GATEWAY_FILES.nginxStreamSite)};`,
      `    access_log ${o.dir}/access.log latchkey_stream;`,
      '}',
      '',
    ].join('\n');
  }
  return [
    `# Standalone nginx for the Latchkey gateway: nginx -p ${o.dir} -c ${file(o, GATEWAY_FILES.nginxMain)} -g 'pid ${o.dir}/nginx.pid;'`,
    '# Relative paths below are under the -p prefix, so it runs without root. pid and error_log are left to -g',
    "# (or nginx's defaults); add `user www-data;` when started as root.",
    'worker_processes auto;',
    'events {',
    '    worker_connections 1024;',
    '}',
    'http {',
    '    client_body_temp_path client_body_temp;',
    '    proxy_temp_path proxy_temp;',
    '    fastcgi_temp_path fastcgi_temp;',
    '    uwsgi_temp_path uwsgi_temp;',
    '    scgi_temp_path scgi_temp;',
    `    include ${file(o, GATEWAY_FILES.nginxSite)};`,
    '    access_log access.log latchkey_gateway;',
    '}',
    '',
  ].join('\n');
}

/** A complete haproxy.cfg. */
export function renderHaproxy(o: GatewayConfigOptions): string {
  checkOptions(o);
  return [
    ...header(o, 'haproxy', [`Run: haproxy -f ${file(o, GATEWAY_FILES.haproxy)} (add -db to stay in the foreground).`]),
    '',
    'global',
    '    # `set ssl crl-file` sends the whole CRL file in one runtime-API command, which must fit in one buffer',
    `    # (default 16 kB: about 250 revoked certificates; ${HAPROXY_BUFSIZE / 1024} kB: about 4,500). Each connection may hold two.`,
    `    tune.bufsize ${HAPROXY_BUFSIZE}`,
    '    # No TLS session cache, and no tickets on the bind line: a resumed session skips certificate',
    '    # verification, so a device revoked after its first handshake could keep reconnecting on its old session',
    '    # whatever the CRL says. Every connection makes a full handshake checked against the current CRL.',
    '    # (TLS 1.3 clients still receive a stateful ticket from OpenSSL; with no cache it never resumes.)',
    '    tune.ssl.cachesize 0',
    '    # Runtime API: `latchkey-server gateway sync --haproxy-socket` swaps the CRL in place with',
    `    # "set ssl crl-file ${file(o, GATEWAY_FILES.crl)} <<" + "commit ssl crl-file ${file(o, GATEWAY_FILES.crl)}".`,
    `    stats socket ${file(o, GATEWAY_FILES.haproxySocket)} mode 600 level admin`,
    '    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets',
    '    # The access log (log-format below: device, user, serial) on stdout, which systemd puts in the journal;',
    '    # or `log /dev/log local0` for syslog.',
    '    log stdout format raw local0 info',
    '',
    ...(o.upstream.stream ? haproxyTcp(o) : haproxyHttp(o)),
    '',
  ].join('\n');
}

/**
 * HAProxy, --require-attested: the acl `latchkey_attested`, true for an attested device's certificate only:
 * its OU is exactly TPM_ATTESTED_OU, and the whole subject DN (RFC 2253, as nginx's) has it right after O.
 */
function haproxyAttestedAcl(o: GatewayConfigOptions): string[] {
  if (!o.requireAttested) return [];
  return [
    `    # --require-attested: only devices whose key a TPM attested. Their certificates (and no other: the server builds`,
    `    # subjects, and a device's name, the CN, is only [A-Za-z0-9._-]) carry OU=${TPM_ATTESTED_OU} right after O.`,
    '    # Both the attribute (ssl_c_s_dn(OU): its value, exactly, never text inside the CN) and its place: the whole',
    '    # DN in RFC 2253 from ^ to $ ([emailAddress=…,]UID=…,CN=…,OU=…,O=<org>, every character of the OU and the',
    `    # org ${JSON.stringify(o.requireAttested.org)} but letters, digits and spaces written \\xHH). If the org in config.json changes, run gateway config again.`,
    `    acl latchkey_attested_ou ssl_c_s_dn(OU) -m str '${TPM_ATTESTED_OU}'`,
    `    acl latchkey_attested_dn ssl_c_s_dn(,0,rfc2253) -m reg '${attestedDnPattern(o.requireAttested.org)}'`,
  ];
}

/** HAProxy mode tcp: the bytes go through once the device certificate is verified. */
function haproxyTcp(o: GatewayConfigOptions): string[] {
  return [
    'defaults',
    '    mode tcp',
    '    log global',
    `    log-format "%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts ${HAPROXY_LOG_IDENTITY}"`,
    '    timeout connect 5s',
    '    # SSH, RDP and database sessions sit idle for long.',
    '    timeout client 1h',
    '    timeout server 1h',
    '    timeout client-fin 30s',
    '',
    'frontend latchkey_gateway',
    '    # Only devices: verify required against the issuing CA and the root, with the CRLs of both.',
    '    # A revoked or missing client certificate fails the TLS handshake with an alert.',
    `    bind ${listenHaproxy(o.listen)} ssl crt ${file(o, GATEWAY_FILES.haproxyPem)} ca-file ${file(o, GATEWAY_FILES.caBundle)} crl-file ${file(o, GATEWAY_FILES.crl)} verify required ssl-min-ver TLSv1.2 no-tls-tickets`,
    '    # A verified certificate without a device id in its subject UID (not a device certificate, or issued',
    '    # before the UID was added to the profile: renewal fixes it) is not let through.',
    `    tcp-request session reject unless { ssl_c_s_dn(UID) -m reg '^${UUID_RE}$' }`,
    ...haproxyAttestedAcl(o),
    ...(o.requireAttested ? ['    tcp-request session reject unless latchkey_attested_ou latchkey_attested_dn'] : []),
    '    default_backend latchkey_app',
    '',
    'backend latchkey_app',
    `    server app ${hostPort(o.upstream)}`,
  ];
}

function haproxyHttp(o: GatewayConfigOptions): string[] {
  return [
    'defaults',
    '    mode http',
    '    log global',
    `    log-format "%ci:%cp [%tr] %ft %b/%s %ST %B %{+Q}r ${HAPROXY_LOG_IDENTITY}"`,
    '    timeout connect 5s',
    '    timeout client 60s',
    '    timeout server 60s',
    '    timeout http-request 10s',
    '',
    'frontend latchkey_gateway',
    '    # Only devices: verify required against the issuing CA and the root, with the CRLs of both.',
    '    # A revoked or missing client certificate fails the TLS handshake with an alert.',
    `    bind ${listenHaproxy(o.listen)} ssl crt ${file(o, GATEWAY_FILES.haproxyPem)} ca-file ${file(o, GATEWAY_FILES.caBundle)} crl-file ${file(o, GATEWAY_FILES.crl)} verify required ssl-min-ver TLSv1.2 no-tls-tickets alpn http/1.1`,
    '    # A verified certificate without a device id in its subject UID (not a device certificate, or issued',
    '    # before the UID was added to the profile: renewal fixes it) is not let through.',
    `    http-request deny deny_status 403 unless { ssl_c_s_dn(UID) -m reg '^${UUID_RE}$' }`,
    ...haproxyAttestedAcl(o),
    ...(o.requireAttested
      ? ['    # A device that is not attested gets 403 and why.', `    http-request return status 403 content-type text/plain string "${NOT_ATTESTED_BODY}" unless latchkey_attested_ou latchkey_attested_dn`]
      : []),
    '    # Every X-Latchkey-* header the client sent, in any spelling (- or _, any case: CGI and WSGI apps read',
    "    # X_Latchkey_Device_Id as HTTP_X_LATCHKEY_DEVICE_ID, the same as the real one), goes first.",
    `    http-request del-header ${LATCHKEY_HEADER_RE} -m reg`,
    `    http-request set-header ${GATEWAY_HEADERS.deviceId} %[ssl_c_s_dn(UID)]`,
    `    http-request set-header ${GATEWAY_HEADERS.serial} %[ssl_c_serial,hex]`,
    '    # The user: the subject emailAddress (the attribute itself, so nothing in the CN can pose as it); no header',
    '    # for a device without a user.',
    `    http-request set-header ${GATEWAY_HEADERS.user} %[ssl_c_s_dn(emailAddress)] if { ssl_c_s_dn(emailAddress) -m reg '^${USER_EMAIL_PATTERN}$' }`,
    '    http-request set-header X-Forwarded-Proto https',
    '    option forwardfor',
    '    default_backend latchkey_app',
    '',
    'backend latchkey_app',
    o.upstream.tls
      ? `    server app ${hostPort(o.upstream)} ssl verify required ca-file /etc/ssl/certs/ca-certificates.crt sni str(${bareHost(o.upstream)}) verifyhost ${bareHost(o.upstream)}`
      : `    server app ${hostPort(o.upstream)}`,
  ];
}

/** Issuing CRL then root CRL, each checked: PEM label `X509 CRL`, signed by its CA. */
export function crlBundle(parts: { pem: string; ca: Certificate; what: string }[], now: Date): { pem: string; warnings: string[] } {
  const warnings: string[] = [];
  const out = parts.map((p) => {
    const blocks = pemDecodeAll(p.pem);
    if (blocks.length !== 1 || blocks[0]!.label !== PEM.CRL) throw new Error(`the ${p.what} is not one PEM "${PEM.CRL}" block`);
    const crl = parseCrl(blocks[0]!.der);
    if (!verifyCrl(crl, p.ca)) throw new Error(`the ${p.what} is not signed by ${subjectString(p.ca)}`);
    if (crl.nextUpdate && crl.nextUpdate.getTime() <= now.getTime()) {
      warnings.push(`the ${p.what} expired at ${crl.nextUpdate.toISOString()}: the gateway will refuse every device until it is refreshed`);
    }
    return crlToPem(crl.der);
  });
  return { pem: out.join(''), warnings };
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveP, reject) => {
    const req = request(url, { ca, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveP({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 15 s')));
    req.on('error', reject);
    req.end();
  });
}


/** The org of the server's config.json: the O of its device certificates. */
function configOrg(dataDir: string): string {
  const org = (JSON.parse(readFileSync(join(dataDir, CONFIG_FILE), 'utf8')) as { org?: unknown }).org;
  if (typeof org !== 'string' || org.length === 0) throw new UsageError(`${join(dataDir, CONFIG_FILE)} has no org; --require-attested matches the org of device certificates`);
  return org;
}

const USAGE = `latchkey-server gateway config nginx|haproxy [--listen HOST:PORT] [--upstream URL] [--server-name NAME]
                               [--out DIR] [--data-dir D] [--server URL] [--name HOST]... [--cert F --key F] [--root-crl F]
                               [--require-attested]
  --upstream http(s)://HOST[:PORT] (default http://127.0.0.1:8080) for a web app, tcp://HOST:PORT for a TCP service
  reached with \`latchkey connect\` (SSH, RDP, a database): nginx stream, HAProxy mode tcp.
  --out writes a new key and a certificate for the gateway (serverAuth, issued by the issuing CA) for every
  --name (default: --server-name, or the --listen host); --cert/--key use one you have instead.
  --require-attested admits only TPM-attested devices (subject OU=${TPM_ATTESTED_OU} after O, see
  groups set NAME --attestation tpm); any other device gets 403 saying why (TCP: the connection is closed).`;

/**
 * `latchkey-server gateway config …` (argv: the words after `gateway config`).
 * Prints the config; with --out DIR writes it and the files it refers to.
 */
export async function gatewayConfigCommand(argv: string[], dataDir: string, out: (s: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        listen: { type: 'string' },
        upstream: { type: 'string' },
        'server-name': { type: 'string' },
        out: { type: 'string' },
        'data-dir': { type: 'string' },
        server: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        'root-crl': { type: 'string' },
        'require-attested': { type: 'boolean' },
        name: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\nusage: ${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) {
    out(`usage: ${USAGE}`);
    return 0;
  }
  const [kind, extra] = parsed.positionals;
  if (kind !== 'nginx' && kind !== 'haproxy') throw new UsageError(`gateway config needs nginx or haproxy\nusage: ${USAGE}`);
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const dir = v['data-dir'] ?? dataDir;
  if (!dir) throw new UsageError('--data-dir is required (the server\'s data dir: its CAs go into the gateway config)');
  if (!existsSync(join(dir, CONFIG_FILE))) throw new UsageError(`no ${CONFIG_FILE} in ${dir}; is it the server's --data-dir?`);
  if (!!v.cert !== !!v.key) throw new UsageError('--cert and --key go together (the gateway\'s own TLS certificate and its key)');
  if (v.cert && v.name) throw new UsageError('--name is for the certificate gateway config issues; with --cert/--key the certificate already has its names');

  const listen = parseListen(v.listen ?? '8443');
  const upstream = parseUpstream(v.upstream ?? 'http://127.0.0.1:8080');
  const outDir = v.out ? resolve(v.out) : undefined;
  const now = new Date();

  const rootPem = readFileSync(join(dir, FILES.rootCert), 'utf8');
  const issuingPem = readFileSync(join(dir, FILES.issuingCert), 'utf8');
  const root = parseCertificate(rootPem);
  const issuing = parseCertificate(issuingPem);

  // The gateway's own TLS certificate: given (--cert/--key), or issued below for its names with a new key.
  const names = v.cert ? [] : (v.name ?? defaultGatewayNames(v['server-name'], listen.host));
  if (!v.cert && outDir) gatewayNames(names); // usage errors before anything is fetched or written
  let given: { chainPem: string; keyPem: string; source: string } | undefined;
  if (v.cert && v.key) {
    const chain = pemDecodeAll(readFileSync(v.cert, 'utf8')).filter((b) => b.label === PEM.CERTIFICATE);
    if (chain.length === 0) throw new Error(`${v.cert} holds no certificate`);
    const leaf = parseCertificate(chain[0]!.der);
    given = { chainPem: chain.map((b) => certificateToPem(b.der)).join(''), keyPem: readFileSync(v.key, 'utf8'), source: `from ${v.cert} (${subjectString(leaf)}, until ${leaf.notAfter.toISOString()})` };
  }
  let certSource = given?.source ?? `issued by \`gateway config --out\` for ${names.join(', ') || '(--name)'} with its own key (serverAuth, signed by ${subjectString(issuing)})`;

  const opts: GatewayConfigOptions = {
    listen,
    upstream,
    serverName: v['server-name'] ?? '_',
    dir: outDir ?? DEFAULT_GATEWAY_DIR,
    certSource,
    caSubjects: [subjectString(issuing), subjectString(root)],
    generatedAt: now,
    requireAttested: v['require-attested'] ? { org: configOrg(dir) } : undefined,
  };
  const main = kind === 'nginx' ? renderNginxSite(opts) : renderHaproxy(opts);
  if (!outDir) {
    out(main);
    out(`# Files are expected in ${DEFAULT_GATEWAY_DIR}: run again with --out ${DEFAULT_GATEWAY_DIR} to write them.`);
    return 0;
  }

  // The CRLs come from the running server, which regenerates a stale one before serving it.
  const base = (v.server ?? localServerUrl(dir)).replace(/\/+$/, '');
  const fetchCrl = async (path: string, what: string): Promise<string | undefined> => {
    let r;
    try {
      r = await httpsGet(base + path, rootPem);
    } catch (e) {
      throw new Error(`cannot fetch the ${what} from ${base + path} (${(e as Error).message}); start the server (latchkey-server start --data-dir ${dir}) or give --server URL`, { cause: e });
    }
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`${base + path} answered ${r.status} for the ${what}`);
    return r.body;
  };
  const issuingCrl = await fetchCrl(PATHS.crlPem, 'issuing CA\'s CRL');
  if (!issuingCrl) throw new Error(`${base + PATHS.crlPem} has no CRL; is ${base} this data dir's server?`);
  const rootCrl = v['root-crl'] ? readFileSync(v['root-crl'], 'utf8') : await fetchCrl(PATHS.rootCrlPem, 'root CA\'s CRL');
  if (!rootCrl) {
    throw new Error(`this server does not hold the root's key, so it publishes no root CRL; nginx and HAProxy need one for every CA in the chain: pass your PKI's root CRL with --root-crl FILE`);
  }
  const crl = crlBundle([{ pem: issuingCrl, ca: issuing, what: 'issuing CA\'s CRL' }, { pem: rootCrl, ca: root, what: 'root CA\'s CRL' }], now);

  let cert: { chainPem: string; keyPem: string } | undefined = given;
  if (!cert) {
    const issued = await issueGatewayCertificate({ dataDir: dir, names, now, env: process.env });
    certSource = `issued for ${names.join(', ')} with a new key (serverAuth, serial ${issued.leaf.serialHex}, by ${subjectString(issuing)}, until ${issued.leaf.notAfter.toISOString()})`;
    cert = issued;
  }
  const { chainPem: certChainPem, keyPem } = cert;
  mkdirSync(outDir, { recursive: true, mode: 0o755 });
  const written: string[] = [];
  const write = (name: string, data: string, mode = 0o644): void => {
    writeFileAtomic(join(outDir, name), data, mode);
    written.push(join(outDir, name));
  };
  write(GATEWAY_FILES.caBundle, certificateToPem(issuing.der) + certificateToPem(root.der));
  write(GATEWAY_FILES.crl, crl.pem);
  if (kind === 'nginx') {
    write(GATEWAY_FILES.cert, certChainPem);
    write(GATEWAY_FILES.key, keyPem, 0o600);
    write(upstream.stream ? GATEWAY_FILES.nginxStreamSite : GATEWAY_FILES.nginxSite, main);
    write(GATEWAY_FILES.nginxMain, renderNginxMain(opts, upstream.stream ? nginxStreamModule(localNginxV()) : null));
  } else {
    write(GATEWAY_FILES.haproxyPem, certChainPem + keyPem, 0o600);
    write(GATEWAY_FILES.haproxy, main);
  }
  out(main);
  out(
    [
      ...written.map((w) => `# wrote ${w}`),
      `# gateway TLS certificate: ${certSource}`,
      ...crl.warnings.map((w) => `# WARNING: ${w}`),
      kind === 'nginx'
        ? `# try it: nginx -t -p ${outDir} -c ${join(outDir, GATEWAY_FILES.nginxMain)} -g 'pid ${outDir}/nginx.pid;'`
        : `# try it: haproxy -c -f ${join(outDir, GATEWAY_FILES.haproxy)}`,
    ].join('\n'),
  );
  return 0;
}

