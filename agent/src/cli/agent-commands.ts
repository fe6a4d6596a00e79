/**
 * The table of `latchkey` commands: what each is called, takes, shows as
 * an example, and does. Settings come from the AgentConfig (file, env,
 * flags, validated once); commands that pull in heavy modules import them
 * where used.
 */
import { readFile } from 'node:fs/promises';
import { Option, type CommandSpec, type ProgramSpec, cleanSecret, readSecretFile } from '@latchkey/cli';
import type { AgentConfig } from '../config/agent-config.js';
import { KEYSTORE_KINDS } from '../keystore/keystore.js';
import { AgentError } from '../errors.js';
import { enroll } from '../enroll.js';
import { type CaCerts, normalizeFingerprint } from '../est/est-client.js';
import { SSO_FLOWS, type SsoFlow } from '../sso/sso-fns.js';
import { systemClock } from '../util/clock.js';
import { collectFacts } from '../facts.js';
import { savePkcs11Pin } from '../keystore/open-keystore.js';
import { forgetRevokedIdentity, recordRefusedRenewal, refusalMessage } from '../renew/revoked.js';
import { certOf, renewOnce } from '../renew/renew.js';
import { writeFileAtomic } from '../state/atomic.js';
import { type KeystoreConfig, readIdentity } from '../state/identity.js';
import { formatStatus, readStatus } from '../status.js';
import { WORKER_COMMAND } from '../token-worker/protocol.js';
import { AGENT_VERSION } from '../version.js';
import { spinner } from './spinner.js';

/** `renew --json`. */
interface RenewJson {
  renewed: boolean;
  kind?: 'renew' | 'recover';
  previousSerial?: string;
  serial?: string;
  error?: { code: string; message: string; details?: AgentError['details'] };
}

export interface AgentCliCtx {
  cfg: AgentConfig;
  /** The command's own options (state dir, keystore and PKCS#11 settings are in cfg). */
  o: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  out: (line: string) => void;
  log: (line: string) => void;
}

type Cmd = CommandSpec<AgentCliCtx>;
const str = (o: Record<string, unknown>, k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);

const usage = (message: string): AgentError => new AgentError('USAGE', message);

const ENROLL_TOKEN = { what: 'the enrollment token', makeWith: 'latchkey-server token create' };

/** The enrollment token from --token-file, --token or LATCHKEY_TOKEN (in that order), cleaned of surrounding whitespace (CRLF included). */
function enrollToken(o: Record<string, unknown>, env: NodeJS.ProcessEnv): string | undefined {
  const file = str(o, 'tokenFile');
  if (file !== undefined) return readSecretFile(file, { ...ENROLL_TOKEN, flag: '--token-file' }, usage);
  const flag = str(o, 'token');
  if (flag !== undefined) return cleanSecret(flag, { ...ENROLL_TOKEN, where: '--token' }, usage);
  return env.LATCHKEY_TOKEN ? cleanSecret(env.LATCHKEY_TOKEN, { ...ENROLL_TOKEN, where: 'LATCHKEY_TOKEN' }, usage) : undefined;
}

const enrollCmd: Cmd = {
  usage: 'enroll',
  summary: 'make a key, enroll with the server (waits for approval if the group asks for it); with a token, or by signing in (--sso)',
  options: [
    new Option('--server <url>', 'the latchkey-server URL, https://HOST:PORT'),
    new Option('--token <token>', 'an enrollment token from `latchkey-server token create` (seen in ps: prefer --token-file F or LATCHKEY_TOKEN)'),
    new Option('--token-file <file>', 'the enrollment token from a file only you can read (chmod 600); a trailing newline or CRLF is fine'),
    new Option('--sso', "sign in at the company's identity provider instead of giving a token"),
    new Option('--sso-flow <flow>', 'how to sign in: browser (default with a desktop session) or device (a URL and a code, for SSH and headless machines)').choices([...SSO_FLOWS]),
    new Option('--sso-issuer <url>', 'which identity provider, when the server has several'),
    new Option('--ca-fingerprint <sha256>', "pin the server's root CA (printed by `latchkey-server init`)"),
    new Option('--keystore <kind>', 'where the key is made (default: os, or file on Linux without a desktop session); env LATCHKEY_KEYSTORE').choices([...KEYSTORE_KINDS]),
    new Option('--pkcs11-module <path>', 'PKCS#11 module for --keystore pkcs11; env LATCHKEY_PKCS11_MODULE'),
    new Option('--pkcs11-token <label>', 'token label; env LATCHKEY_PKCS11_TOKEN (PIN: LATCHKEY_PKCS11_PIN or LATCHKEY_PKCS11_PIN_FILE)'),
    new Option('--save-pin', 'keep the token PIN in the OS credential store'),
    new Option('--attest <kind>', 'tpm: make the key in the TPM and prove it to the server (TCG credential activation + TPM2_Certify); needs a tpm2-pkcs11 token; env LATCHKEY_ATTEST').choices(['tpm', 'none']),
    new Option('--tpm-tcti <tcti>', 'how tpm2-tools reach the TPM (default: /dev/tpmrm0); env LATCHKEY_TPM_TCTI'),
    new Option('--tpm-parent <handle>', "the persistent primary device keys are made under (default 0x81000001, tpm2_ptool init's); env LATCHKEY_TPM_PARENT"),
  ],
  examples: [
    'enroll --server https://latchkey.example.com:8443 --token lk_enr_… --ca-fingerprint 3A:7F:…',
    'enroll --server https://latchkey.example.com:8443 --ca-fingerprint 3A:7F:… --sso',
    'enroll --server https://latchkey.example.com:8443 --ca-fingerprint 3A:7F:… --sso --sso-flow device',
    'enroll --server https://latchkey.example.com:8443 --token lk_enr_… --keystore pkcs11 --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token latchkey',
    'enroll --server https://latchkey.example.com:8443 --token lk_enr_… --keystore pkcs11 --pkcs11-module /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so --pkcs11-token latchkey --attest tpm',
  ],
  async run({ cfg, o, env, out, log }) {
    const server = str(o, 'server');
    const sso = !!o.sso;
    if (str(o, 'token') !== undefined && str(o, 'tokenFile') !== undefined) throw usage('give the enrollment token once: --token-file F or --token T');
    // The environment's token counts only when no flag says how to enroll (--sso included).
    const token = enrollToken(o, sso ? {} : env);
    if (sso && token) throw usage('enroll takes --token T / --token-file F or --sso (sign in), not both');
    if (!sso && (str(o, 'ssoFlow') || str(o, 'ssoIssuer'))) throw usage('--sso-flow and --sso-issuer go with --sso');
    if (!server || (!token && !sso)) throw usage('enroll needs --server URL and either --token-file F (or --token T, or LATCHKEY_TOKEN) or --sso (sign in at the identity provider)');
    let keystore: KeystoreConfig;
    if (cfg.keystore === 'pkcs11') {
      const { module, tokenLabel } = cfg.pkcs11;
      if (!module) throw usage('--keystore pkcs11 needs --pkcs11-module PATH (e.g. /usr/lib/softhsm/libsofthsm2.so, /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so)');
      keystore = { kind: 'pkcs11', module, ...(tokenLabel ? { tokenLabel } : {}) };
    } else keystore = { kind: cfg.keystore };
    if (o.savePin) {
      if (keystore.kind !== 'pkcs11') throw usage('--save-pin is for --keystore pkcs11');
      await savePkcs11Pin({ stateDir: cfg.stateDir, env }, keystore);
    }
    const pin = str(o, 'caFingerprint') ? normalizeFingerprint(str(o, 'caFingerprint')!) : undefined;
    // Made at the first wait for approval: a spinner running during the sign-in would garble its lines.
    let spin: ReturnType<typeof spinner> | undefined;
    const started = performance.now();
    try {
      const signIn = async (ca: CaCerts): Promise<string> => {
        const { signInToEnroll } = await import('../sso/sso-enroll.js');
        const flow = str(o, 'ssoFlow') as SsoFlow | undefined;
        const issuer = str(o, 'ssoIssuer');
        const grant = await signInToEnroll(new URL(server).origin, ca.rootPem, { ...(flow ? { flow } : {}), ...(issuer ? { issuer } : {}), log, clock: systemClock, host: { platform: process.platform, env } });
        return grant.enrollToken;
      };
      const id = await enroll({
        stateDir: cfg.stateDir,
        server,
        token: token ?? signIn,
        caFingerprint: pin,
        keystore,
        env,
        ...(cfg.attest === 'tpm' ? { attest: { kind: 'tpm' as const, parent: cfg.tpm.parent, ...(cfg.tpm.tcti ? { tcti: cfg.tpm.tcti } : {}) } } : {}),
        facts: await collectFacts(),
        onRootPinned: (fp) => {
          if (!pin) log(`trusting the server's root CA (SHA-256 ${fp}) through the system trust store`);
        },
        onResume: (at) => log(`resuming the enrollment signed in at ${at} (no new sign-in needed; \`latchkey unenroll\` drops it)`),
        onPending: (s, n) => (spin ??= spinner(process.stderr)).update(`waiting for an administrator to approve this device (check ${n}; next in ${s} s)…`),
      });
      spin?.done();
      const c = certOf(id);
      out(`enrolled: device ${id.deviceId}, certificate ${c.serialHex} valid until ${c.notAfter.toISOString()} (keystore ${id.keystore.kind}${id.attestation ? ', TPM-attested' : ''}, ${Math.round(performance.now() - started)} ms)`);
      return 0;
    } finally {
      spin?.done();
    }
  },
};

const statusCmd: Cmd = {
  usage: 'status',
  summary: 'device id, certificate, next renewal, last error, control channel (exit 3: must be enrolled again)',
  options: [new Option('--json', 'print only JSON on stdout')],
  examples: ['status', 'status --json'],
  async run({ cfg, o, out }) {
    const s = await readStatus(cfg.stateDir, new Date());
    out(o.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    return s.state === 'revoked' || s.state === 'reenroll-required' ? 3 : 0;
  },
};

const renewCmd: Cmd = {
  usage: 'renew',
  summary: 'renew now if due (or always, with --force)',
  options: [new Option('--force', 'renew even if not due'), new Option('--json', 'print only JSON on stdout (errors too)')],
  examples: ['renew', 'renew --force --json'],
  async run({ cfg, o, env, out }) {
    const { stateDir } = cfg;
    try {
      const r = await renewOnce({ stateDir, env, now: () => new Date(), facts: () => collectFacts(), testHooks: cfg.testHooks }, { force: !!o.force });
      const c = certOf(r.identity);
      if (o.json) {
        const j: RenewJson = r.renewed ? { renewed: true, kind: r.kind, previousSerial: r.previousSerial, serial: c.serialHex } : { renewed: false, serial: c.serialHex };
        out(JSON.stringify(j));
      } else {
        out(r.renewed ? `renewed: serial ${r.previousSerial} → ${c.serialHex}, valid until ${c.notAfter.toISOString()}` : `not due: next renewal at ${r.renewAt.toISOString()} (use --force to renew now)`);
      }
      return 0;
    } catch (caught) {
      if (!(caught instanceof AgentError)) throw caught;
      // Refused for good (revoked): recorded and the key deleted, exactly as `latchkey run` does.
      const before = await readIdentity(stateDir).catch(() => undefined);
      const refused = await recordRefusedRenewal(stateDir, caught, new Date().toISOString(), (reason, at) => forgetRevokedIdentity(stateDir, env, reason, at));
      if (!o.json) throw refused ? new AgentError(caught.code, refusalMessage(refused, caught, before), caught.details, { cause: caught }) : caught;
      // --json (also how `latchkey run` hears from a pkcs11 renewal child): the server's answer as is.
      const j: RenewJson = { renewed: false, error: { code: caught.code, message: caught.message, details: caught.details } };
      out(JSON.stringify(j));
      return caught.exitCode;
    }
  },
};

const runCmd: Cmd = {
  usage: 'run',
  summary: 'the daemon: enrolls from the enroll file if not enrolled yet, renews before expiry, backs off while the server is away, listens on the control channel',
  options: [
    new Option(
      '--enroll-file <file>',
      'zero-touch enrollment: the enroll file to enroll from when this device has no identity (default /etc/latchkey/enroll.json; Windows %ProgramData%\\Latchkey\\enroll.json; macOS /Library/Application Support/Latchkey/enroll.json, after the com.latchkey.agent managed preferences of an MDM profile); env LATCHKEY_ENROLL_FILE',
    ),
  ],
  examples: ['run', '--state-dir /var/lib/latchkey run', 'run --enroll-file /etc/latchkey/enroll.json'],
  async run({ cfg, env, log }) {
    const { runCommand } = await import('./run-command.js');
    return runCommand(cfg, env, (l) => log(`${new Date().toISOString()} ${l}`));
  },
};

const exportCmd: Cmd = {
  usage: 'export',
  summary: 'write the certificate (and CA chain) as PEM',
  options: [new Option('--cert <file>', 'where the certificate goes'), new Option('--chain <file>', 'where the issuing CA and root go')],
  examples: ['export --cert ~/device.crt.pem --chain ~/latchkey-chain.pem'],
  async run({ cfg, o, out }) {
    const cert = str(o, 'cert');
    const chain = str(o, 'chain');
    if (!cert) throw usage('export needs --cert FILE');
    const id = await readIdentity(cfg.stateDir);
    if (!id) throw new AgentError('NOT_ENROLLED', 'this device is not enrolled');
    await writeFileAtomic(cert, id.certPem, { mode: 0o644 });
    if (chain) await writeFileAtomic(chain, id.chainPem + id.rootPem, { mode: 0o644 });
    out(`wrote ${cert}${chain ? ` and ${chain}` : ''}`);
    return 0;
  },
};

const connectCmd: Cmd = {
  usage: 'connect',
  summary: "forward local TCP (or stdin/stdout, for an SSH ProxyCommand) to an mTLS gateway with this device's certificate; renewals are picked up live",
  options: [
    new Option('--to <host:port>', 'the gateway'),
    new Option('--listen <addr>', 'local address to listen on (default 127.0.0.1:0)'),
    new Option('--stdio', 'one connection over stdin/stdout instead'),
    new Option('--ca <file>', "extra CA (PEM) to trust for the gateway's certificate"),
    new Option('--servername <name>', 'TLS server name (SNI) if not the --to host'),
    new Option('--allow-remote', 'listen on a non-loopback address (anyone reaching it uses this identity)'),
  ],
  examples: ['connect --to db-gw.example.com:5432 --listen 127.0.0.1:15432', 'ssh -o ProxyCommand="latchkey connect --stdio --to ssh-gw.example.com:2222" host'],
  async run({ cfg, o, env, out, log: err }) {
    const { connectStdio, isLoopback, parseHostPort, startForwarder } = await import('../connect/forwarder.js');
    const to = str(o, 'to');
    const ca = str(o, 'ca');
    const servername = str(o, 'servername');
    if (!to) throw usage('connect needs --to GATEWAY:PORT');
    if (o.stdio && o.listen) throw usage('connect takes --listen or --stdio, not both');
    let extraCaPem: string | undefined;
    if (ca) {
      extraCaPem = await readFile(ca, 'utf8').catch((e: Error) => {
        throw usage(`--ca ${ca}: ${e.message}`);
      });
      if (!extraCaPem.includes('-----BEGIN CERTIFICATE-----')) throw usage(`--ca ${ca} holds no PEM certificate`);
    }
    const log = (l: string) => err(`${new Date().toISOString()} ${l}`);
    const common = { stateDir: cfg.stateDir, env, to: parseHostPort(to, '--to'), log, ...(servername ? { servername } : {}), ...(extraCaPem ? { extraCaPem } : {}) };
    if (o.stdio) {
      await connectStdio(common, process.stdin, process.stdout);
      return 0;
    }
    const listen = parseHostPort(str(o, 'listen') ?? '127.0.0.1:0', '--listen');
    if (!isLoopback(listen.host) && !o.allowRemote) {
      throw usage(`--listen ${listen.host} is not a loopback address: anyone who can reach it would use this device's identity; add --allow-remote if that is really meant`);
    }
    const fwd = await startForwarder({ ...common, listen });
    out(`forwarding ${fwd.address.host}:${fwd.address.port} → ${common.to.host}:${common.to.port} (mTLS as this device; Ctrl-C to stop)`);
    await new Promise<void>((r) => {
      process.once('SIGTERM', r);
      process.once('SIGINT', r);
    });
    await fwd.close();
    return 0;
  },
};

const unenrollCmd: Cmd = {
  usage: 'unenroll',
  summary: 'delete the key and the identity from this device',
  examples: ['unenroll'],
  async run({ cfg, env, out }) {
    const { unenrollCommand } = await import('./unenroll-command.js');
    return unenrollCommand(cfg.stateDir, env, out);
  },
};

const browser = (sub: 'enable' | 'disable' | 'status', summary: string, options: Option[], examples: string[]): Cmd => ({
  usage: `browser ${sub}`,
  summary,
  options,
  examples,
  async run({ cfg, o, env }) {
    const { browserCommand } = await import('../browser/browser-command.js');
    const profiles = Array.isArray(o.firefoxProfile) ? (o.firefoxProfile as string[]) : [];
    const policy = o.firefoxPolicy === true ? true : str(o, 'firefoxPolicy');
    return browserCommand(
      sub,
      {
        json: !!o.json,
        ...(str(o, 'nssDb') ? { nssDb: str(o, 'nssDb')! } : {}),
        ...(profiles.length ? { firefoxProfiles: profiles } : {}),
        ...(o.firefox === false ? { noFirefoxDiscovery: true } : {}),
        ...(policy !== undefined ? { firefoxPolicy: policy } : {}),
      },
      cfg.stateDir,
      env,
    );
  },
});

const service = (sub: 'install' | 'uninstall', summary: string, examples: string[]): Cmd => ({
  usage: `service ${sub}`,
  summary,
  options: [new Option('--user', 'a user service (the OS keystore needs the user session) instead of a system one')],
  examples,
  async run({ cfg, o }) {
    const { installServiceCommand } = await import('../service/service-command.js');
    return installServiceCommand(sub, { user: !!o.user }, cfg.stateDir);
  },
});

const enrollFileWriteCmd: Cmd = {
  usage: 'enroll-file write',
  summary: 'write the zero-touch enroll file and its token file (for installers: the Windows MSI runs this); the token from stdin or LATCHKEY_TOKEN',
  options: [
    new Option('--server <url>', 'the latchkey-server URL, https://HOST:PORT'),
    new Option('--ca-fingerprint <sha256>', "the server's root CA SHA-256 (printed by `latchkey-server init`)"),
    new Option('--keystore <kind>', 'the keystore the service enrolls into (default: the agent\'s own default)').choices(['file', 'os']),
    new Option('--enroll-file <file>', 'where to write the enroll file (default: the platform\'s, e.g. /etc/latchkey/enroll.json)'),
    new Option('--token-file-out <file>', 'where to write the token (default: enroll-token beside the enroll file; mode 0600, on Windows SYSTEM and Administrators only)'),
    new Option('--force', 'replace an enroll file or token file that holds something else'),
  ],
  examples: [
    'enroll-file write --server https://latchkey.example.com:8443 --ca-fingerprint 3A:7F:… < token.txt',
    'LATCHKEY_TOKEN=lk_enr_… enroll-file write --server https://latchkey.example.com:8443 --ca-fingerprint 3A:7F:… --keystore file',
  ],
  async run({ o, env, out }) {
    const server = str(o, 'server');
    const caFingerprint = str(o, 'caFingerprint');
    if (!server || !caFingerprint) throw usage('enroll-file write needs --server URL and --ca-fingerprint SHA256, and the token on stdin or in LATCHKEY_TOKEN');
    const { defaultEnrollFile } = await import('../zero-touch/enroll-file.js');
    const { nodeEnrollFileWriteDeps, readTokenInput, writeEnrollFiles } = await import('../zero-touch/enroll-file-write.js');
    const { resolve } = await import('node:path');
    const enrollFile = str(o, 'enrollFile') ? resolve(str(o, 'enrollFile')!) : defaultEnrollFile(process.platform, env);
    const tokenOut = str(o, 'tokenFileOut');
    const { token, from } = await readTokenInput(env, process.stdin);
    const r = await writeEnrollFiles(
      { enrollFile, ...(tokenOut ? { tokenFile: resolve(tokenOut) } : {}), server, caFingerprint, ...(str(o, 'keystore') ? { keystore: str(o, 'keystore') as 'file' | 'os' } : {}), token, tokenFrom: from, force: !!o.force },
      nodeEnrollFileWriteDeps(),
    );
    out(r.written.length ? `wrote ${r.written.map((w) => (w === 'enroll file' ? `the enroll file ${r.enrollFile}` : `the token file ${r.tokenFile}`)).join(' and ')}` : `unchanged: ${r.enrollFile} and ${r.tokenFile} already hold this`);
    return 0;
  },
};

/** An internal command the agent runs in a child process of itself: routed like any other, not shown in --help. */
const internal = (name: string, summary: string, run: Cmd['run']): Cmd => ({ usage: name, summary, hidden: true, examples: [], run });

const INTERNAL: Cmd[] = [
  internal(WORKER_COMMAND, 'a token worker: TLS with a freshly loaded pkcs11 key, for `run` and `connect` (token-worker/)', async ({ cfg, env }) =>
    (await import('../token-worker/worker.js')).runTokenWorker({ stateDir: cfg.stateDir, env, facts: () => collectFacts(), testHooks: cfg.testHooks }),
  ),
];

export const AGENT_CLI: ProgramSpec<AgentCliCtx> = {
  name: 'latchkey',
  summary: `device identity agent ${AGENT_VERSION}: an mTLS client certificate, made and renewed on this device`,
  version: AGENT_VERSION,
  globals: [
    new Option('--state-dir <dir>', 'where identity and state live; env LATCHKEY_STATE_DIR, or the platform default'),
    new Option('--config <file>', `a JSON file of settings (stateDir, keystore, pkcs11Module, pkcs11Token, controlChannel, attest, tpmTcti, tpmParent); env LATCHKEY_CONFIG`),
    new Option('--debug', 'on failure, print the stack trace too'),
  ],
  groups: {
    browser: "keep the certificate in the browsers' store (Linux: ~/.pki/nssdb and each Firefox profile; macOS: login keychain; Windows: user store), replaced at each renewal",
    service: 'run `latchkey run` as a system (or user) service',
    'enroll-file': 'the zero-touch enroll file `latchkey run` reads on its first start',
  },
  commands: [
    enrollCmd,
    statusCmd,
    renewCmd,
    runCmd,
    exportCmd,
    connectCmd,
    unenrollCmd,
    browser(
      'enable',
      "put this device's certificate in the browsers' store (Linux: also every Firefox profile's own database)",
      [
        new Option('--nss-db <dir>', 'the NSS database (Linux; default ~/.pki/nssdb)'),
        new Option('--firefox-profile <dir...>', "a Firefox profile directory to use besides those profiles.ini lists (Linux)"),
        new Option('--no-firefox', "do not look for Firefox profiles (only --firefox-profile's)"),
        new Option('--firefox-policy [file]', "merge Firefox's automatic certificate selection into its policies.json (default: Linux /etc/firefox/policies/policies.json, needs write access there); `browser disable` takes it out"),
      ],
      ['browser enable', 'browser enable --nss-db ~/.pki/nssdb', 'browser enable --firefox-policy', 'browser enable --firefox-profile ~/.mozilla/firefox/abcd1234.work'],
    ),
    browser('disable', "remove this device's certificate from the browsers' store", [], ['browser disable']),
    browser('status', 'is it enabled, and is the current certificate in the store', [new Option('--json', 'print only JSON on stdout')], ['browser status --json']),
    service('install', 'install and start the service', ['service install', 'service install --user']),
    service('uninstall', 'stop and remove the service', ['service uninstall', 'service uninstall --user']),
    enrollFileWriteCmd,
    ...INTERNAL,
  ],
  epilog: `Settings: --config file, then environment, then flags.
Exit codes: 0 ok, 1 failure, 2 usage, 3 the device must be enrolled again.
Every command takes --help, e.g. latchkey enroll --help.`,
};
