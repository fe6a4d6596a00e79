/**
 * The control channel in a child process (`latchkey _channel`), for the
 * daemon on a pkcs11 keystore. OpenSSL's pkcs11 engine (libp11 0.4.12)
 * caches a token's objects at its first key load, so a long-lived process
 * never sees the key a renewal made later (tpm2-pkcs11): after a renewal the
 * daemon starts a fresh child, which loads the new key. The child reports
 * what the server says as JSON lines on stdout; it exits when its stdin
 * closes, so it never outlives the daemon.
 */
import type { AgentPolicy } from '@latchkey/protocol/wire';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { selfArgv } from '../renew/renew-child.js';
import { backoffMs } from '../util/backoff.js';
import { type ControlChannel, type ControlChannelOptions, startControlChannel } from './control-channel.js';

export type ChannelLine =
  | { event: 'log'; line: string }
  | { event: 'connected' }
  | { event: 'disconnected' }
  | { event: 'revoked'; reason: string; at: string }
  | { event: 'renew-now'; reason?: string }
  | ({ event: 'policy' } & AgentPolicy);

/** The child's side: run the channel, report as JSON lines, stop when the parent goes away. */
export async function runChannelChild(stateDir: string, env: NodeJS.ProcessEnv, facts: ControlChannelOptions['facts']): Promise<number> {
  const emit = (l: ChannelLine): void => {
    process.stdout.write(`${JSON.stringify(l)}\n`);
  };
  let wasConnected = false;
  const ch = startControlChannel({
    stateDir,
    env,
    facts,
    log: (line) => emit({ event: 'log', line }),
    onRevoked: (reason, at) => emit({ event: 'revoked', reason, at }),
    onRenewNow: (reason) => emit({ event: 'renew-now', ...(reason ? { reason } : {}) }),
    onPolicy: (p) => emit({ event: 'policy', ...p }),
  });
  const poll = setInterval(() => {
    if (ch.connected !== wasConnected) {
      wasConnected = ch.connected;
      emit({ event: wasConnected ? 'connected' : 'disconnected' });
    }
  }, 250);
  await new Promise<void>((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('error', resolve);
    process.stdin.resume();
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  clearInterval(poll);
  await ch.stop();
  return 0;
}

/** The daemon's side: the same interface as startControlChannel, one child at a time. */
export function startControlChannelInChild(o: ControlChannelOptions & { argv?: string[] }): ControlChannel {
  const argv = o.argv ?? selfArgv();
  let child: ChildProcess | undefined;
  let stopped = false;
  let connected = false;
  let crashes = 0;
  let timer: NodeJS.Timeout | undefined;

  const restartLater = (why: string, started: number): void => {
    // It died on its own: start another, backing off if it keeps dying early.
    crashes = Date.now() - started < 10_000 ? crashes + 1 : 1;
    const wait = backoffMs(crashes, (o.random ?? Math.random)(), o.backoff ?? { baseMs: 1000, capMs: 60_000 });
    o.log(`latchkey: the control channel process ${why}; restarting in ${(wait / 1000).toFixed(1)} s`);
    clearTimeout(timer);
    timer = setTimeout(spawnChild, wait);
  };

  const spawnChild = (): void => {
    if (stopped) return;
    const started = Date.now();
    let p: ChildProcess;
    try {
      p = spawn(argv[0]!, [...argv.slice(1), '--state-dir', o.stateDir, '_channel'], { env: o.env, stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      return restartLater(`could not be started (${(e as Error).message})`, started);
    }
    child = p;
    createInterface({ input: p.stdout! }).on('line', (text) => {
      let l: ChannelLine;
      try {
        l = JSON.parse(text) as ChannelLine;
      } catch {
        return;
      }
      // A child being replaced (reconnect) may still talk for a moment: only the current one counts,
      // except that a revocation is a revocation whoever heard it.
      if (child !== p && l.event !== 'revoked') return;
      if (l.event === 'log') o.log(l.line);
      else if (l.event === 'connected') {
        connected = true;
        crashes = 0;
      } else if (l.event === 'disconnected') connected = false;
      else if (l.event === 'revoked') {
        stopped = true;
        o.onRevoked(l.reason, l.at);
      } else if (l.event === 'renew-now') o.onRenewNow(l.reason);
      else if (l.event === 'policy') {
        const { event: _, ...policy } = l;
        o.onPolicy?.(policy);
      }
    });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    p.on('error', (e) => {
      // Failed to start (no 'exit' follows) or failed to be killed.
      if (child !== p || p.exitCode !== null || p.pid !== undefined) return o.log(`latchkey: control channel process: ${e.message}`);
      child = undefined;
      connected = false;
      restartLater(`could not be started (${e.message})`, started);
    });
    p.on('exit', (code, signal) => {
      if (child !== p) return;
      child = undefined;
      connected = false;
      if (stopped) return;
      restartLater(`ended (${signal ?? `exit ${code}`})${err.trim() ? `: ${err.trim().split('\n').pop()}` : ''}`, started);
    });
  };

  const kill = (p: ChildProcess | undefined): void => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.stdin?.end();
    p.kill('SIGTERM');
    setTimeout(() => p.exitCode === null && p.signalCode === null && p.kill('SIGKILL'), 5000).unref();
  };

  spawnChild();
  return {
    reconnect() {
      // A fresh process, so the engine loads the renewed key.
      clearTimeout(timer);
      const old = child;
      child = undefined;
      connected = false;
      kill(old);
      spawnChild();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      const p = child;
      child = undefined;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise<void>((r) => p.once('exit', () => r()));
      kill(p);
      await gone;
    },
    get connected() {
      return connected;
    },
  };
}
