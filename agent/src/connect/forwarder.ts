/**
 * `latchkey connect`: a local TCP listener whose connections leave this
 * machine wrapped in mTLS with the device identity (SSH, RDP, databases
 * behind an mTLS gateway such as nginx `stream` with `ssl_verify_client on`).
 *
 * Every new connection uses the identity as it is now: identity.json is
 * checked (one stat) at each accept and re-read when it changed, so a renewal
 * by `latchkey run` is picked up without dropping the listener or the
 * connections already open. If the identity is gone (revoked, unenrolled),
 * new connections are closed with a clear log line.
 *
 * The gateway's certificate is verified against the system's trust store,
 * the Latchkey root and any `--ca` file, with the hostname of `--to`.
 */
import { stat } from 'node:fs/promises';
import { isIP, type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { type ConnectionOptions, type SecureContext, type TLSSocket, connect as tlsConnect, createSecureContext, rootCertificates } from 'node:tls';
import { parseHostPort as parseAddress } from '@latchkey/protocol/wire';
import { AgentError } from '../errors.js';
import { tlsNeedsFreshProcess } from '../keystore/keystore.js';
import { deviceTlsOptions, loadDeviceTlsKey } from '../keystore/tls-key.js';
import { certOf } from '../renew/renew.js';
import { type Identity, readIdentity, readStatusFile } from '../state/identity.js';
import { STATE_FILES } from '../state/paths.js';
import { spawnTokenWorker } from '../token-worker/client.js';
import { createCurrentWorker } from '../token-worker/current-worker.js';

export interface HostPort {
  host: string;
  port: number;
}

/** `HOST:PORT` or `[V6]:PORT` of a flag (the protocol's one parser); the port is required. */
export function parseHostPort(s: string, what: string): HostPort {
  const a = parseAddress(s);
  if (!a) throw new AgentError('USAGE', `${what} must be HOST:PORT (or [IPv6]:PORT), got "${s}"`);
  return { host: a.host, port: a.port };
}

/** Loopback only, unless the user explicitly shares the device identity with the network. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || /^127\./.test(host) || host === '::1';
}

export interface ConnectIdentity {
  context: SecureContext;
  deviceId: string;
  serial: string;
}

export interface ForwarderOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  to: HostPort;
  /** SNI and the name checked in the gateway's certificate; default the host of `to` (no SNI for an IP). */
  servername?: string;
  /** Extra trusted CAs (PEM) for the gateway's certificate. */
  extraCaPem?: string;
  log: (line: string) => void;
  /** Abandon a TLS handshake with the gateway after this long. Default 15 s. */
  handshakeTimeoutMs?: number;
}

/** What the forwarder needs per connection: the current identity as a TLS context (cached while identity.json is unchanged). */
export function createIdentitySource(o: Pick<ForwarderOptions, 'stateDir' | 'env' | 'extraCaPem'>): { current(): Promise<ConnectIdentity> } {
  let cached: { ino: number; mtimeMs: number; size: number; id: ConnectIdentity } | undefined;
  let loading: Promise<ConnectIdentity> | undefined;
  const file = join(o.stateDir, STATE_FILES.identity);

  async function load(): Promise<ConnectIdentity> {
    const st = await stat(file).catch(() => undefined);
    if (!st) {
      cached = undefined;
      const s = await readStatusFile(o.stateDir).catch(() => undefined);
      if (s?.state === 'revoked') throw new AgentError('REENROLL_REQUIRED', `this device was revoked${s.revokedAt ? ` at ${s.revokedAt}` : ''}; its key and certificate are deleted`);
      throw new AgentError('NOT_ENROLLED', `this device is not enrolled (no identity in ${o.stateDir})`);
    }
    // identity.json is replaced by rename: a renewal gives it a new inode.
    if (cached && cached.ino === st.ino && cached.mtimeMs === st.mtimeMs && cached.size === st.size) return cached.id;
    const id = await readIdentity(o.stateDir);
    if (!id) throw new AgentError('NOT_ENROLLED', `this device is not enrolled (no identity in ${o.stateDir})`);
    const tlsKey = await loadDeviceTlsKey(id, { stateDir: o.stateDir, env: o.env });
    const context = createSecureContext({
      ca: [...rootCertificates, id.rootPem, ...(o.extraCaPem ? [o.extraCaPem] : [])],
      ...deviceTlsOptions(id, tlsKey),
    });
    const next = { context, deviceId: id.deviceId, serial: certOf(id).serialHex };
    cached = { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, id: next };
    return next;
  }

  return {
    current() {
      // Concurrent accepts share one reload.
      loading ??= load().finally(() => (loading = undefined));
      return loading;
    },
  };
}

/** One mTLS connection to the gateway with the current identity; resolves once the handshake is done. */
export function dialGateway(o: ForwarderOptions, id: ConnectIdentity): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const servername = o.servername ?? (isIP(o.to.host) ? undefined : o.to.host);
    // allowHalfOpen: the local client may shut down its sending side and still wait for the reply (see splice).
    // tls.connect honours it, @types/node's ConnectionOptions does not list it.
    const options: ConnectionOptions & { allowHalfOpen: boolean } = {
      host: o.to.host,
      port: o.to.port,
      secureContext: id.context,
      allowHalfOpen: true,
      // Node checks the gateway's certificate against servername if set, else against the host (an IP: its IP SANs).
      ...(servername ? { servername } : {}),
    };
    const s = tlsConnect(options);
    const timer = setTimeout(() => s.destroy(new Error(`no TLS handshake with ${o.to.host}:${o.to.port} within ${(o.handshakeTimeoutMs ?? 15_000) / 1000} s`)), o.handshakeTimeoutMs ?? 15_000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Why the gateway (or the network) said no, in words an IT person can act on. */
export function describeDialError(e: Error & { code?: string }, to: HostPort): string {
  const m = e.message;
  if (/certificate revoked/i.test(m)) return `the gateway refused this device's certificate: it is revoked (${m})`;
  if (/alert|handshake failure|certificate required|bad certificate|unknown ca/i.test(m)) return `the gateway refused the TLS handshake (${m}); is this device's certificate revoked, expired or from another CA?`;
  if (e.code === 'ECONNREFUSED') return `nothing listens on ${to.host}:${to.port}`;
  if (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID' || e.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || e.code === 'SELF_SIGNED_CERT_IN_CHAIN' || e.code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    return `the gateway's own certificate is not trusted (${m}); pass --ca FILE with its CA, or --servername NAME`;
  }
  // A TLS 1.3 server rejects the client certificate after the client's Finished: the socket just closes.
  // With TLS 1.3 the server checks the client certificate after the client's handshake is done: a
  // refusal shows up as a reset, or as the gateway having ended the connection before sending a byte.
  if (e.code === 'ECONNRESET' || e.code === 'EPIPE' || /socket hang up|disconnected before|ended by the other party/i.test(m)) {
    return `the gateway closed the connection before sending anything (${m}); it refused the TLS client certificate if this repeats: is this device revoked or its certificate expired? (latchkey status)`;
  }
  return m;
}

/**
 * Splices a local socket and a gateway socket until both directions are done.
 * Both sockets are half-open capable: the end of one side is forwarded (by pipe)
 * as end() to the other, and a side that closed after delivering all its data lets
 * the other flush its writes before it is destroyed. An error, or a side closing
 * before its end, destroys both. `onClose` runs once, after both sockets closed.
 */
export function splice(local: Socket, remote: TLSSocket, onClose: (bytes: { up: number; down: number }, remoteError?: Error) => void): void {
  let up = 0;
  let down = 0;
  let localEnded = false;
  let remoteError: Error | undefined;
  local.on('data', (d: Buffer) => (up += d.length));
  local.on('end', () => (localEnded = true));
  remote.on('data', (d: Buffer) => (down += d.length));
  // The gateway hanging up first, before a single byte, is how a TLS 1.3 refusal of the certificate often looks.
  remote.on('end', () => {
    if (down === 0 && !localEnded) {
      remoteError ??= Object.assign(new Error('the connection was closed'), { code: 'EPIPE' });
      local.destroy();
      remote.destroy();
    }
  });
  local.pipe(remote);
  remote.pipe(local);
  let closes = 0;
  const closed = (from: Socket, to: Socket): void => {
    if (from.readableEnded) {
      // Everything `from` received is queued on `to` (pipe ended it): let it flush, then drop it.
      to.end();
      if (to.writableFinished) to.destroy();
      else to.once('finish', () => to.destroy());
    } else {
      to.destroy();
    }
    if (++closes === 2) onClose({ up, down }, remoteError);
  };
  local.on('error', () => {
    local.destroy();
    remote.destroy();
  });
  remote.on('error', (e) => {
    remoteError = e;
    local.destroy();
    remote.destroy();
  });
  local.once('close', () => closed(local, remote));
  remote.once('close', () => closed(remote, local));
}

export interface Forwarder {
  address: HostPort;
  /** Connections open now. */
  readonly open: number;
  close(): Promise<void>;
}

/** Changes whenever identity.json is replaced (a renewal renames a new file in: a new inode). */
async function identityVersion(stateDir: string): Promise<string> {
  const st = await stat(join(stateDir, STATE_FILES.identity)).catch(() => undefined);
  return st ? `${st.ino}/${st.mtimeMs}/${st.size}` : 'none';
}

/** Listens on `listen` and forwards each connection to the gateway over mTLS. */
export async function startForwarder(
  o: ForwarderOptions & {
    listen: HostPort;
    /** How to start a token worker (default: this program). */
    workerArgv?: string[];
    /** Whether a key of this kind is used in a token worker (default: as the keystore says). */
    inWorker?: (kind: Identity['keystore']['kind']) => boolean;
  },
): Promise<Forwarder> {
  const source = createIdentitySource(o);
  const id0 = await readIdentity(o.stateDir);
  let lastSerial = id0 ? certOf(id0).serialHex : '';
  const announce = (serial: string): void => {
    if (serial === lastSerial) return;
    o.log(`latchkey connect: now presenting the renewed certificate ${serial} (was ${lastSerial})`);
    lastSerial = serial;
  };
  // Keys OpenSSL must load fresh (pkcs11) are used in a token worker, replaced after each renewal; other keys in this process.
  const workers =
    id0 && (o.inWorker ?? tlsNeedsFreshProcess)(id0.keystore.kind)
      ? createCurrentWorker({
          spawn: () => {
            // A fresh worker: most likely a renewal (or the last worker died).
            void readIdentity(o.stateDir).then((id) => id && announce(certOf(id).serialHex), () => undefined);
            return spawnTokenWorker({ ...(o.workerArgv ? { argv: o.workerArgv } : {}), stateDir: o.stateDir, env: o.env, log: o.log });
          },
          version: () => identityVersion(o.stateDir),
        })
      : undefined;
  const target = { to: o.to, ...(o.servername ? { servername: o.servername } : {}), ...(o.extraCaPem ? { extraCaPem: o.extraCaPem } : {}) };
  // Fail before listening if the identity cannot be used at all.
  const first = workers ? { deviceId: id0!.deviceId, serial: certOf(id0!).serialHex } : await source.current();
  o.log(`latchkey connect: device ${first.deviceId}, certificate ${first.serial}${workers ? ` (${id0!.keystore.kind}: TLS in a token worker, fresh after each renewal)` : ''}`);
  let open = 0;
  lastSerial = first.serial;
  const sockets = new Set<Socket>();
  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (local) => {
    sockets.add(local);
    local.on('close', () => sockets.delete(local));
    local.on('error', () => undefined);
    const from = `${local.remoteAddress}:${local.remotePort}`;
    if (workers) {
      open++;
      void workers
        .use((w) => w.connect(local, target))
        .then(
          (r) => r.refused && o.log(`latchkey connect: ${from} → ${o.to.host}:${o.to.port} failed: ${r.refused}`),
          (e: AgentError) => o.log(e.code === 'SERVER_REFUSED' ? `latchkey connect: ${from} → ${o.to.host}:${o.to.port} failed: ${e.message}` : `latchkey connect: refusing ${from}: ${e.message}`),
        )
        .finally(() => open--);
      return;
    }
    void (async () => {
      let id: ConnectIdentity;
      try {
        id = await source.current();
      } catch (e) {
        o.log(`latchkey connect: refusing ${from}: ${(e as Error).message}`);
        local.destroy();
        return;
      }
      announce(id.serial);
      let remote: TLSSocket;
      try {
        remote = await dialGateway(o, id);
      } catch (e) {
        o.log(`latchkey connect: ${from} → ${o.to.host}:${o.to.port} failed: ${describeDialError(e as Error, o.to)}`);
        local.destroy();
        return;
      }
      if (local.destroyed) {
        remote.destroy();
        return;
      }
      open++;
      splice(local, remote, (bytes, err) => {
        open--;
        // With TLS 1.3 the gateway checks the client certificate after the client's handshake is done:
        // a refusal arrives as an alert on the first read.
        if (err && bytes.down === 0) o.log(`latchkey connect: ${from} → ${o.to.host}:${o.to.port} failed: ${describeDialError(err, o.to)}`);
      });
      local.resume();
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new AgentError('USAGE', e.code === 'EADDRINUSE' ? `${o.listen.host}:${o.listen.port} is already in use; pick another --listen port` : `cannot listen on ${o.listen.host}:${o.listen.port}: ${e.message}`)),
    );
    server.listen(o.listen.port, o.listen.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: { host: a.address, port: a.port },
    get open() {
      return open;
    },
    async close() {
      await Promise.all([
        new Promise<void>((r) => {
          server.close(() => r());
          for (const s of sockets) s.destroy();
        }),
        workers?.stop(),
      ]);
    },
  };
}

/** `--stdio`: one connection, stdin/stdout to the gateway (an SSH ProxyCommand). */
export async function connectStdio(o: ForwarderOptions, stdin: NodeJS.ReadableStream, stdout: NodeJS.WritableStream): Promise<void> {
  const id = await createIdentitySource(o).current();
  let remote: TLSSocket;
  try {
    remote = await dialGateway(o, id);
  } catch (e) {
    throw new AgentError('SERVER_REFUSED', `${o.to.host}:${o.to.port}: ${describeDialError(e as Error, o.to)}`);
  }
  await spliceStdio(o, remote, stdin, stdout);
}

/**
 * The `--stdio` splice: resolves once the gateway closed and everything it sent
 * has been handed to `stdout` (the caller exits the process right after, and
 * writes to a pipe are asynchronous on Linux). Throws if the gateway hung up
 * before its first byte while the input was still open (a TLS 1.3 refusal).
 */
export async function spliceStdio(o: Pick<ForwarderOptions, 'to'>, remote: TLSSocket, stdin: NodeJS.ReadableStream, stdout: NodeJS.WritableStream): Promise<void> {
  let down = 0;
  let inputEnded = false;
  remote.on('data', (d: Buffer) => (down += d.length));
  const failed = await new Promise<Error | undefined>((resolve) => {
    stdin.pipe(remote);
    // stdout is not ended by the pipe (process.stdout cannot be): flushing is awaited below.
    remote.pipe(stdout, { end: false });
    // The gateway's end is the end of the session (there is no half-closing a process's stdout).
    remote.on('end', () => remote.end());
    remote.on('close', () => resolve(undefined));
    remote.on('error', (e) => resolve(e));
    stdin.on('end', () => {
      inputEnded = true;
      remote.end();
    });
  });
  stdin.unpipe(remote);
  // With TLS 1.3 a refused client certificate shows up only now: the gateway hangs up before its first byte.
  if (down === 0 && (failed || !inputEnded)) {
    const e = failed ?? Object.assign(new Error('the connection was closed'), { code: 'EPIPE' });
    throw new AgentError('SERVER_REFUSED', `${o.to.host}:${o.to.port}: ${describeDialError(e, o.to)}`);
  }
  // Everything read from the gateway was written to stdout (the pipe paused the gateway while stdout was full);
  // an empty write calls back once all the writes before it are flushed.
  await new Promise<void>((resolve) => {
    if ((stdout as { destroyed?: boolean }).destroyed || (stdout as { writableEnded?: boolean }).writableEnded) resolve();
    else stdout.write('', () => resolve());
  });
}
