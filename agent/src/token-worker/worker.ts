/**
 * The worker's side (`latchkey _token-worker`): takes requests over the IPC
 * channel (protocol.ts), does them with the device key as identity.json names
 * it when the worker started, and ends when the parent disconnects.
 */
import type { Socket } from 'node:net';
import type { DeviceFacts } from '@latchkey/protocol';
import { AgentError } from '../errors.js';
import { type ControlChannel, startControlChannel } from '../channel/control-channel.js';
import { type ConnectIdentity, createIdentitySource, describeDialError, dialGateway, splice } from '../connect/forwarder.js';
import type { RenewOutcome } from '../renew/daemon.js';
import { renewOnce } from '../renew/renew.js';
import type { TestHooks } from '../test-hooks.js';
import { type ChannelEvent, type ConnectResult, type WorkerMessage, type WorkerRequest, isWorkerRequest, toWireError } from './protocol.js';

export interface WorkerContext {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  facts: () => Promise<DeviceFacts>;
  /** Test-only: see test-hooks.ts. */
  testHooks?: Pick<TestHooks, 'crashAt'>;
}

/** How the worker talks to its parent: process.send in the real worker, a stub in tests. */
export interface WorkerPort {
  send(m: WorkerMessage): void;
}

/** Renews once with the key the worker loaded; the daemon records a refusal (revoked) itself. */
export async function renewRequest(ctx: WorkerContext, force: boolean): Promise<RenewOutcome> {
  const r = await renewOnce({ stateDir: ctx.stateDir, env: ctx.env, now: () => new Date(), facts: ctx.facts, ...(ctx.testHooks ? { testHooks: ctx.testHooks } : {}) }, { force });
  return r.renewed ? { renewed: true, kind: r.kind, previousSerial: r.previousSerial } : { renewed: false };
}

/** Runs the control channel, reporting what the server says and whether it is connected. */
export function channelRequest(ctx: WorkerContext, port: WorkerPort): { stop(): Promise<void> } {
  const emit = (channel: ChannelEvent): void => port.send({ event: 'channel', channel });
  let wasConnected = false;
  const ch: ControlChannel = startControlChannel({
    stateDir: ctx.stateDir,
    env: ctx.env,
    facts: ctx.facts,
    log: (line) => port.send({ event: 'log', line }),
    onRevoked: (reason, at) => emit({ kind: 'revoked', reason, at }),
    onRenewNow: (reason) => emit({ kind: 'renew-now', ...(reason ? { reason } : {}) }),
    onPolicy: (p) => emit({ kind: 'policy', ...p }),
  });
  const poll = setInterval(() => {
    if (ch.connected === wasConnected) return;
    wasConnected = ch.connected;
    emit({ kind: wasConnected ? 'connected' : 'disconnected' });
  }, 250);
  return {
    async stop() {
      clearInterval(poll);
      await ch.stop();
    },
  };
}

/** One forwarded connection: dial the gateway as this device and splice; resolves once both sides closed. */
export async function connectRequest(
  source: { current(): Promise<ConnectIdentity> },
  ctx: WorkerContext,
  req: Extract<WorkerRequest, { op: 'connect' }>,
  local: Socket,
): Promise<ConnectResult> {
  // Sockets handed over IPC arrive without allowHalfOpen: the local client may shut down its side and still wait for the reply.
  local.allowHalfOpen = true;
  local.on('error', () => undefined);
  const o = { stateDir: ctx.stateDir, env: ctx.env, to: req.to, log: () => undefined, ...(req.servername ? { servername: req.servername } : {}) };
  let remote;
  try {
    remote = await dialGateway(o, await source.current());
  } catch (e) {
    local.destroy();
    if (e instanceof AgentError) throw e;
    throw new AgentError('SERVER_REFUSED', describeDialError(e as Error, req.to));
  }
  if (local.destroyed) {
    remote.destroy();
    return { up: 0, down: 0 };
  }
  return new Promise((resolve) => {
    splice(local, remote, (bytes, err) => {
      // With TLS 1.3 a refused certificate arrives as an alert on the first read.
      resolve({ ...bytes, ...(err && bytes.down === 0 ? { refused: describeDialError(err, req.to) } : {}) });
    });
    local.resume();
  });
}

/** The worker process: serves requests until the parent goes away. */
export async function runTokenWorker(ctx: WorkerContext): Promise<number> {
  const send = process.send?.bind(process);
  if (!send) throw new AgentError('USAGE', '_token-worker is started by latchkey itself (over an IPC channel), not by hand');
  // A reply to a parent that has gone away is dropped (the callback takes the error; without one it would be thrown).
  const port: WorkerPort = { send: (m) => void (process.connected && send(m, undefined, undefined, () => undefined)) };
  let channel: { stop(): Promise<void> } | undefined;
  const sockets = new Set<Socket>();
  let source: { pem: string | undefined; s: ReturnType<typeof createIdentitySource> } | undefined;

  const serve = async (req: WorkerRequest, handle: unknown): Promise<WorkerMessage> => {
    switch (req.op) {
      case 'renew':
        return { id: req.id, ok: true, renew: await renewRequest(ctx, req.force) };
      case 'channel':
        if (channel) throw new AgentError('USAGE', 'the control channel already runs in this worker');
        channel = channelRequest(ctx, port);
        return { id: req.id, ok: true, channel: 'started' };
      case 'connect': {
        const local = handle as Socket | undefined;
        if (!local || typeof local.resume !== 'function') throw new AgentError('USAGE', 'a connect request comes with its socket');
        sockets.add(local);
        local.once('close', () => sockets.delete(local));
        // One identity (one TLS context) for the worker's life, as the in-process forwarder caches it.
        if (!source || source.pem !== req.extraCaPem) source = { pem: req.extraCaPem, s: createIdentitySource({ stateDir: ctx.stateDir, env: ctx.env, ...(req.extraCaPem ? { extraCaPem: req.extraCaPem } : {}) }) };
        return { id: req.id, ok: true, connect: await connectRequest(source.s, ctx, req, local) };
      }
    }
  };

  process.on('message', (m: unknown, handle: unknown) => {
    if (!isWorkerRequest(m)) {
      port.send({ event: 'log', line: 'latchkey: token worker: ignored a malformed request' });
      (handle as Socket | undefined)?.destroy?.();
      return;
    }
    serve(m, handle).then(
      (reply) => port.send(reply),
      (e: unknown) => port.send({ id: m.id, ok: false, error: toWireError(e) }),
    );
  });
  await new Promise<void>((resolve) => {
    process.once('disconnect', resolve);
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await channel?.stop();
  for (const s of sockets) s.destroy();
  return 0;
}
