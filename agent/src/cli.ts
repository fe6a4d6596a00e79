#!/usr/bin/env node
/**
 * `latchkey`: the device agent's command line (DESIGN.md "Command line").
 * Exit codes: 0 ok, 1 failure, 2 usage error, 3 this device must be enrolled
 * again (revoked, or expired past the recovery window).
 */
import { readFile, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AgentError } from './errors.js';
import { enroll } from './enroll.js';
import { readPendingEnroll, removePendingEnroll } from './enroll-pending.js';
import { normalizeFingerprint } from './est/est-client.js';
import { collectFacts } from './facts.js';
import { forgetPkcs11Pin, openKeyStore, savePkcs11Pin } from './keystore/open-keystore.js';
import { createKicks, runDaemon, systemClock } from './renew/daemon.js';
import { forgetRevokedIdentity, recordRefusedRenewal, refusalMessage } from './renew/revoked.js';
import { renewOnce, certOf } from './renew/renew.js';
import { daemonTls } from './token-worker/daemon-tls.js';
import { WORKER_COMMAND } from './token-worker/protocol.js';
import { runTokenWorker } from './token-worker/worker.js';
import { writeFileAtomic } from './state/atomic.js';
import { type KeystoreConfig, readIdentity, readStatusFile, updateStatusFile } from './state/identity.js';
import { acquireStateLock } from './state/lock.js';
import { STATE_FILES, resolveStateDir } from './state/paths.js';
import { formatStatus, readStatus } from './status.js';
import { AGENT_VERSION } from './version.js';

const USAGE = `latchkey ${AGENT_VERSION} — device identity agent (mTLS client certificate, renewed silently)

usage: latchkey [--state-dir D] <command> [options]
  enroll --server URL --token T [--ca-fingerprint SHA256] [--keystore os|pkcs11|file]
         [--pkcs11-module PATH --pkcs11-token LABEL [--save-pin]]
         (token PIN: LATCHKEY_PKCS11_PIN or LATCHKEY_PKCS11_PIN_FILE; --save-pin keeps it in the OS credential store)
  status [--json]             device id, certificate, next renewal, last error
  renew [--force] [--json]    renew now if due (or always, with --force)
  run                         the daemon: renews before expiry, backs off while the server is away
  export --cert F [--chain F] write the certificate (and CA chain) as PEM
  connect --to HOST:PORT [--listen 127.0.0.1:PORT | --stdio] [--ca FILE] [--servername NAME]
                              forward local TCP connections (or stdin/stdout, for an SSH ProxyCommand)
                              to an mTLS gateway with this device's certificate; renewals are picked up live
  unenroll                    delete the key and the identity from this device
  browser enable|disable|status [--json]  keep the certificate in the browsers' store (Linux: ~/.pki/nssdb;
                              macOS: login keychain; Windows: user store), replaced at each renewal
  service install|uninstall [--user]  run \`latchkey run\` as a system (or user) service
state dir: --state-dir, LATCHKEY_STATE_DIR, or the platform default
exit codes: 0 ok, 1 failure, 2 usage, 3 the device must be enrolled again`;

const KEYSTORES = ['os', 'pkcs11', 'file'] as const;

/** `renew --json`. */
interface RenewJson {
  renewed: boolean;
  kind?: 'renew' | 'recover';
  previousSerial?: string;
  serial?: string;
  error?: { code: string; message: string; details?: AgentError['details'] };
}

function stateDirOf(flag: string | undefined): string {
  return resolveStateDir(flag, { platform: process.platform, env: process.env, home: homedir(), system: process.getuid?.() === 0 });
}

function defaultKeystore(): 'os' | 'file' {
  // The OS credential store needs a desktop session; headless Linux hosts use the file store.
  if (process.platform === 'linux' && !process.env.DBUS_SESSION_BUS_ADDRESS) return 'file';
  return 'os';
}

function spinner(out: NodeJS.WriteStream): { update: (text: string) => void; done: () => void } {
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let i = 0;
  let text = '';
  const tty = out.isTTY;
  const timer = tty ? setInterval(() => out.write(`\r${frames[i++ % frames.length]} ${text}\x1b[K`), 100) : undefined;
  return {
    update(t) {
      text = t;
      if (!tty) out.write(`${t}\n`);
    },
    done() {
      if (timer) {
        clearInterval(timer);
        out.write('\r\x1b[K');
      }
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const { values: g, positionals } = parseArgs({ args: argv, options: { 'state-dir': { type: 'string' }, version: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: false, allowPositionals: true });
  if (g.version) {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  const cmd = positionals[0];
  if (!cmd || g.help || cmd === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return cmd || g.help ? 0 : 2;
  }
  const rest = argv.slice(argv.indexOf(cmd) + 1);
  const stateDir = stateDirOf(typeof g['state-dir'] === 'string' ? g['state-dir'] : undefined);
  type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;
  const parse = (options: Options): { values: Record<string, string | boolean | undefined>; positionals: string[] } => {
    try {
      return parseArgs({ args: rest, options: { ...options, 'state-dir': { type: 'string' } }, strict: true, allowPositionals: true }) as { values: Record<string, string | boolean | undefined>; positionals: string[] };
    } catch (e) {
      throw new AgentError('USAGE', `${(e as Error).message}\n\n${USAGE}`);
    }
  };

  switch (cmd) {
    case 'enroll': {
      const { values: v } = parse({ server: { type: 'string' }, token: { type: 'string' }, 'ca-fingerprint': { type: 'string' }, keystore: { type: 'string' }, 'pkcs11-module': { type: 'string' }, 'pkcs11-token': { type: 'string' }, 'save-pin': { type: 'boolean' } });
      if (!v.server || !v.token) throw new AgentError('USAGE', 'enroll needs --server URL and --token T');
      const kind = (v.keystore as string | undefined) ?? defaultKeystore();
      if (!KEYSTORES.includes(kind as (typeof KEYSTORES)[number])) throw new AgentError('USAGE', `--keystore must be one of ${KEYSTORES.join(', ')}`);
      let keystore: KeystoreConfig;
      if (kind === 'pkcs11') {
        const module = (v['pkcs11-module'] as string | undefined) ?? process.env.LATCHKEY_PKCS11_MODULE;
        if (!module) throw new AgentError('USAGE', '--keystore pkcs11 needs --pkcs11-module PATH (e.g. /usr/lib/softhsm/libsofthsm2.so, /usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so)');
        const tokenLabel = (v['pkcs11-token'] as string | undefined) ?? process.env.LATCHKEY_PKCS11_TOKEN;
        keystore = { kind: 'pkcs11', module, ...(tokenLabel ? { tokenLabel } : {}) };
      } else keystore = { kind: kind as 'os' | 'file' };
      if (v['save-pin']) {
        if (keystore.kind !== 'pkcs11') throw new AgentError('USAGE', '--save-pin is for --keystore pkcs11');
        await savePkcs11Pin({ stateDir, env: process.env }, keystore);
      }
      const pin = v['ca-fingerprint'] ? normalizeFingerprint(v['ca-fingerprint'] as string) : undefined;
      const spin = spinner(process.stderr);
      const started = performance.now();
      try {
        const id = await enroll({
          stateDir,
          server: v.server as string,
          token: v.token as string,
          caFingerprint: pin,
          keystore,
          env: process.env,
          facts: await collectFacts(),
          onRootPinned: (fp) => {
            if (!pin) process.stderr.write(`trusting the server's root CA (SHA-256 ${fp}) through the system trust store\n`);
          },
          onPending: (s, n) => spin.update(`waiting for an administrator to approve this device (check ${n}; next in ${s} s)…`),
        });
        spin.done();
        const c = certOf(id);
        process.stdout.write(`enrolled: device ${id.deviceId}, certificate ${c.serialHex} valid until ${c.notAfter.toISOString()} (keystore ${id.keystore.kind}, ${Math.round(performance.now() - started)} ms)\n`);
        return 0;
      } finally {
        spin.done();
      }
    }
    case 'status': {
      const { values: v } = parse({ json: { type: 'boolean' } });
      const s = await readStatus(stateDir, new Date());
      process.stdout.write(v.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatStatus(s)}\n`);
      return s.state === 'revoked' || s.state === 'reenroll-required' ? 3 : 0;
    }
    case 'renew': {
      const { values: v } = parse({ force: { type: 'boolean' }, json: { type: 'boolean' } });
      try {
        const r = await renewOnce({ stateDir, env: process.env, now: () => new Date(), facts: () => collectFacts() }, { force: !!v.force });
        const c = certOf(r.identity);
        if (v.json) {
          const j: RenewJson = r.renewed ? { renewed: true, kind: r.kind, previousSerial: r.previousSerial, serial: c.serialHex } : { renewed: false, serial: c.serialHex };
          process.stdout.write(`${JSON.stringify(j)}\n`);
        } else {
          process.stdout.write(r.renewed ? `renewed: serial ${r.previousSerial} → ${c.serialHex}, valid until ${c.notAfter.toISOString()}\n` : `not due: next renewal at ${r.renewAt.toISOString()} (use --force to renew now)\n`);
        }
        return 0;
      } catch (caught) {
        if (!(caught instanceof AgentError)) throw caught;
        // Refused for good (revoked): recorded and the key deleted, exactly as `latchkey run` does.
        const refused = await recordRefusedRenewal(stateDir, caught, new Date().toISOString(), (reason, at) => forgetRevokedIdentity(stateDir, process.env, reason, at));
        if (!v.json) throw refused ? new AgentError(caught.code, refusalMessage(refused, caught), caught.details, { cause: caught }) : caught;
        // --json: the server's answer as is.
        const e = caught;
        const j: RenewJson = { renewed: false, error: { code: e.code, message: e.message, details: e.details } };
        process.stdout.write(`${JSON.stringify(j)}\n`);
        return e.exitCode;
      }
    }
    case 'run': {
      parse({});
      let stop!: () => void;
      const stopped = new Promise<void>((r) => (stop = r));
      process.once('SIGTERM', () => stop());
      process.once('SIGINT', () => stop());
      let factsCache: Awaited<ReturnType<typeof collectFacts>> | undefined;
      const facts = async () => (factsCache ??= await collectFacts());
      const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
      const id = await readIdentity(stateDir);
      const kicks = createKicks();
      // pkcs11: renewals and the channel run in token workers (token-worker/daemon-tls.ts).
      const tls = daemonTls(id?.keystore.kind, { stateDir, env: process.env, log });
      const channel =
        id && process.env.LATCHKEY_CONTROL_CHANNEL !== 'off'
          ? tls.startControlChannel({
              stateDir,
              env: process.env,
              facts,
              log,
              onRevoked: (reason, at) => kicks.fire({ type: 'revoked', reason, at }),
              onRenewNow: (reason) => kicks.fire({ type: 'renew-now', ...(reason ? { reason } : {}) }),
              onPolicy: (p) => kicks.fire({ type: 'policy', ...p }),
              ...(process.env.LATCHKEY_BACKOFF_CAP_MS ? { backoff: { baseMs: 500, capMs: Number(process.env.LATCHKEY_BACKOFF_CAP_MS) } } : {}),
            })
          : undefined;
      // `latchkey status` shows whether this daemon's control channel is up, and since when.
      let shown: boolean | undefined;
      const showChannel = (): void => {
        if (!channel || channel.connected === shown) return;
        shown = channel.connected;
        void updateStatusFile(stateDir, { channel: { connected: shown, since: new Date().toISOString(), pid: process.pid } }).catch(() => undefined);
      };
      const channelWatch = setInterval(showChannel, 1000);
      channelWatch.unref();
      showChannel();
      try {
        return await runDaemon({
          ...(tls.renew ? { renew: tls.renew } : {}),
          stateDir,
          env: process.env,
          clock: systemClock,
          facts,
          log,
          stopped,
          kicks,
          onRenewed: () => channel?.reconnect(),
          onRevoked: (reason, at) => forgetRevokedIdentity(stateDir, process.env, reason, at),
          ...(process.env.LATCHKEY_RUN_SLICE_MS ? { sliceMs: Number(process.env.LATCHKEY_RUN_SLICE_MS) } : {}),
          ...(process.env.LATCHKEY_BACKOFF_CAP_MS ? { backoff: { baseMs: 500, capMs: Number(process.env.LATCHKEY_BACKOFF_CAP_MS) } } : {}),
        });
      } finally {
        clearInterval(channelWatch);
        await channel?.stop();
        if (channel) await updateStatusFile(stateDir, { channel: undefined }).catch(() => undefined);
      }
    }
    case 'connect': {
      const { values: v } = parse({ to: { type: 'string' }, listen: { type: 'string' }, stdio: { type: 'boolean' }, ca: { type: 'string' }, servername: { type: 'string' }, 'allow-remote': { type: 'boolean' } });
      const { connectStdio, isLoopback, parseHostPort, startForwarder } = await import('./connect/forwarder.js');
      if (!v.to) throw new AgentError('USAGE', 'connect needs --to GATEWAY:PORT');
      if (v.stdio && v.listen) throw new AgentError('USAGE', 'connect takes --listen or --stdio, not both');
      let extraCaPem: string | undefined;
      if (v.ca) {
        extraCaPem = await readFile(v.ca as string, 'utf8').catch((e: Error) => {
          throw new AgentError('USAGE', `--ca ${v.ca as string}: ${e.message}`);
        });
        if (!extraCaPem.includes('-----BEGIN CERTIFICATE-----')) throw new AgentError('USAGE', `--ca ${v.ca as string} holds no PEM certificate`);
      }
      const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
      const common = { stateDir, env: process.env, to: parseHostPort(v.to as string, '--to'), log, ...(v.servername ? { servername: v.servername as string } : {}), ...(extraCaPem ? { extraCaPem } : {}) };
      if (v.stdio) {
        await connectStdio(common, process.stdin, process.stdout);
        return 0;
      }
      const listen = parseHostPort((v.listen as string | undefined) ?? '127.0.0.1:0', '--listen');
      if (!isLoopback(listen.host) && !v['allow-remote']) {
        throw new AgentError('USAGE', `--listen ${listen.host} is not a loopback address: anyone who can reach it would use this device's identity; add --allow-remote if that is really meant`);
      }
      const fwd = await startForwarder({ ...common, listen });
      process.stdout.write(`forwarding ${fwd.address.host}:${fwd.address.port} → ${common.to.host}:${common.to.port} (mTLS as this device; Ctrl-C to stop)\n`);
      await new Promise<void>((r) => {
        process.once('SIGTERM', r);
        process.once('SIGINT', r);
      });
      await fwd.close();
      return 0;
    }
    case WORKER_COMMAND: {
      // Internal: a token worker (token-worker/), started by `run` and `connect` for pkcs11 keys.
      parse({});
      return runTokenWorker({ stateDir, env: process.env, facts: () => collectFacts() });
    }
    case 'export': {
      const { values: v } = parse({ cert: { type: 'string' }, chain: { type: 'string' } });
      if (!v.cert) throw new AgentError('USAGE', 'export needs --cert FILE');
      const id = await readIdentity(stateDir);
      if (!id) throw new AgentError('NOT_ENROLLED', 'this device is not enrolled');
      await writeFileAtomic(v.cert as string, id.certPem, { mode: 0o644 });
      if (v.chain) await writeFileAtomic(v.chain as string, id.chainPem + id.rootPem, { mode: 0o644 });
      process.stdout.write(`wrote ${v.cert}${v.chain ? ` and ${v.chain}` : ''}\n`);
      return 0;
    }
    case 'unenroll': {
      parse({});
      const release = await acquireStateLock(stateDir);
      try {
        const id = await readIdentity(stateDir);
        if (!id) {
          // An enrollment that never got its answer: its key and request go too.
          const pending = await readPendingEnroll(stateDir);
          if (pending) {
            const store = await openKeyStore(pending.keystore, { stateDir, env: process.env });
            try {
              await store.delete(pending.key);
            } finally {
              await store.close();
            }
            await removePendingEnroll(stateDir);
            process.stdout.write(`not enrolled; removed the key and request of an unfinished enrollment with ${pending.server}\n`);
            return 0;
          }
          // A revoked identity leaves only its record (status: revoked); unenroll clears that too.
          const st = await readStatusFile(stateDir);
          if (st?.state === 'revoked') {
            await rm(join(stateDir, STATE_FILES.status), { force: true });
            process.stdout.write(`not enrolled; removed the record of revoked device ${st.deviceId ?? ''}\n`.replace(' \n', '\n'));
            return 0;
          }
          process.stdout.write('not enrolled; nothing to do\n');
          return 0;
        }
        const store = await openKeyStore(id.keystore, { stateDir, env: process.env });
        try {
          for (const ref of await store.list()) await store.delete(ref);
        } finally {
          await store.close();
        }
        if (id.keystore.kind === 'pkcs11') await forgetPkcs11Pin({ stateDir, env: process.env }, id.keystore);
        await (await import('./browser/browser.js')).removeBrowserCertificate(stateDir, process.env, id);
        await rm(join(stateDir, STATE_FILES.identity), { force: true });
        await rm(join(stateDir, STATE_FILES.status), { force: true });
        process.stdout.write(`unenrolled device ${id.deviceId}: key and certificate deleted from this device (revoke it on the server with \`latchkey-server devices revoke ${id.deviceId}\`)\n`);
        return 0;
      } finally {
        await release();
      }
    }
    case 'browser': {
      const { browserCommand } = await import('./browser/browser-command.js');
      return browserCommand(rest, stateDir);
    }
    case 'service': {
      const { installServiceCommand } = await import('./service/service-command.js');
      return installServiceCommand(rest, stateDir);
    }
    default:
      throw new AgentError('USAGE', `unknown command "${cmd}"\n\n${USAGE}`);
  }
}


main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof AgentError) {
      process.stderr.write(`latchkey: ${e.message}\n`);
      process.exit(e.exitCode);
    }
    process.stderr.write(`latchkey: unexpected error: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
