/**
 * The parent's side of the token worker: starts `latchkey _token-worker`,
 * sends requests (protocol.ts) and pairs the replies, and turns the worker's
 * end into an error for whatever was still waiting on it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { AgentError } from '../errors.js';
import { selfArgv } from '../util/self-argv.js';
import type { RenewOutcome } from '../renew/daemon.js';
import { type ChannelEvent, type ConnectResult, type ConnectTarget, MAX_MESSAGE_BYTES, WORKER_COMMAND, type WorkerMessage, type WorkerReply, type WorkerRequest, fromWireError, isWorkerMessage } from './protocol.js';


export interface TokenWorkerOptions {
  /** The agent's command line before its arguments (default: this program, selfArgv()). */
  argv?: string[];
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Log lines the worker writes (the control channel's). */
  log: (line: string) => void;
  /** What the control channel says, once `channel()` started it. */
  onChannel?: (e: ChannelEvent) => void;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The worker's last words on stderr, or why it could not start. */
  why: string;
}

export interface TokenWorker {
  renew(force: boolean): Promise<RenewOutcome>;
  channel(): Promise<void>;
  /** Hands `local` to the worker, which splices it with an mTLS connection to the gateway; resolves once both sides closed. */
  connect(local: Socket, target: ConnectTarget): Promise<ConnectResult>;
  readonly alive: boolean;
  /** Resolves when the worker process is gone. */
  readonly exited: Promise<WorkerExit>;
  /** Disconnects (the worker ends its work and exits), then SIGTERM, then SIGKILL after 5 s; resolves once it is gone. */
  stop(): Promise<WorkerExit>;
}

type Pending = { resolve: (r: WorkerReply & { ok: true }) => void; reject: (e: Error) => void };

export const describeExit = (x: WorkerExit): string => `${x.signal ? `ended by ${x.signal}` : x.code === null ? 'could not be started' : `ended with exit code ${x.code}`}${x.why ? `: ${x.why}` : ''}`;

export function spawnTokenWorker(o: TokenWorkerOptions): TokenWorker {
  const argv = o.argv ?? selfArgv();
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let err = '';
  let p: ChildProcess | undefined;
  let exit: WorkerExit | undefined;
  let onExit!: (x: WorkerExit) => void;
  const exited = new Promise<WorkerExit>((r) => (onExit = r));

  const finish = (x: WorkerExit): void => {
    if (exit) return;
    exit = x;
    const e = new AgentError('KEYSTORE', `the token worker ${describeExit(x)}`);
    for (const q of pending.values()) q.reject(e);
    pending.clear();
    onExit(x);
  };

  try {
    p = spawn(argv[0]!, [...argv.slice(1), '--state-dir', o.stateDir, WORKER_COMMAND], { env: o.env, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
  } catch (e) {
    finish({ code: null, signal: null, why: (e as Error).message });
  }
  const child = p;
  if (child) {
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on('error', (e) => {
      // Failed to start (no 'exit' follows), or failed to be signalled.
      if (child.pid === undefined) finish({ code: null, signal: null, why: e.message });
    });
    child.on('exit', (code, signal) => finish({ code, signal, why: err.trim().split('\n').pop()?.replace(/^latchkey: /, '') ?? '' }));
    child.on('message', (m: unknown) => {
      if (!isWorkerMessage(m)) {
        o.log('latchkey: the token worker sent a malformed message; stopping it');
        child.kill('SIGKILL');
        return;
      }
      deliver(m);
    });
  }

  const deliver = (m: WorkerMessage): void => {
    if ('event' in m) {
      if (m.event === 'log') o.log(m.line);
      else o.onChannel?.(m.channel);
      return;
    }
    const q = pending.get(m.id);
    if (!q) return;
    pending.delete(m.id);
    if (m.ok) q.resolve(m);
    else q.reject(fromWireError(m.error));
  };

  const request = <R extends WorkerReply & { ok: true }>(req: WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never, handle?: Socket): Promise<R> =>
    new Promise<R>((resolve, reject) => {
      if (exit || !child?.connected) return reject(new AgentError('KEYSTORE', `the token worker ${exit ? describeExit(exit) : 'is stopping'}`));
      const msg = { ...req, id: nextId++ } as WorkerRequest;
      if (JSON.stringify(msg).length > MAX_MESSAGE_BYTES) return reject(new AgentError('USAGE', `a token worker request is larger than ${MAX_MESSAGE_BYTES} bytes (is the --ca file that large?)`));
      pending.set(msg.id, { resolve: resolve as Pending['resolve'], reject });
      child.send(msg, handle, (e) => {
        if (!e) return;
        pending.delete(msg.id);
        reject(new AgentError('KEYSTORE', `cannot reach the token worker: ${e.message}`, {}, { cause: e }));
      });
    });

  return {
    async renew(force) {
      return (await request<Extract<WorkerReply, { renew: unknown }>>({ op: 'renew', force })).renew;
    },
    async channel() {
      await request({ op: 'channel' });
    },
    async connect(local, target) {
      try {
        return (await request<Extract<WorkerReply, { connect: unknown }>>({ op: 'connect', ...target }, local)).connect;
      } finally {
        // Sent, the parent's copy is closed already; not sent, nobody else will close it.
        local.destroy();
      }
    },
    get alive() {
      return !exit;
    },
    exited,
    async stop() {
      if (exit) return exit;
      if (child?.connected) child.disconnect();
      child?.kill('SIGTERM');
      const t = setTimeout(() => child?.kill('SIGKILL'), 5000);
      t.unref();
      const x = await exited;
      clearTimeout(t);
      return x;
    },
  };
}
