/** `latchkey-server init` and `start`: a new data dir, and the server process. */
import { Option } from '@latchkey/cli';
import { UsageError } from '../admin-client.js';
import { need, str, type Cmd } from './cli-context.js';

export const init: Cmd = {
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

export const start: Cmd = {
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
or with curl + openssl, see README.md "Enroll with curl and openssl".
Admin console: ${s.url}/ — sign in ${s.idp ? 'through your identity provider' : `with the admin token in ${dataDir}/admin-token`}; it makes enrollment tokens too.`);
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

