/**
 * Real agents (`latchkey`, file keystore) for the console's browser tests:
 * a command running in the background whose log can be waited on, and the
 * device's certificate and key copied out (decrypted by openssl) for curl to
 * present at a gateway: the agent deletes its own when it is revoked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { until } from '../gateways.js';
import { AGENT_CLI, mustRun, run, tempDir, type Run, type TestCtx } from '../processes.js';

/** The file keystore's passphrase for every agent of these tests. */
const PASSPHRASE = 'console-e2e-passphrase';
const env = { LATCHKEY_KEY_PASSPHRASE: PASSPHRASE };

export interface Agent {
  stateDir: string;
  /** `latchkey --state-dir D ARGS`, to completion. */
  cli(args: string[]): Promise<Run>;
  /** `latchkey --state-dir D ARGS` in the background; killed after the test. */
  start(args: string[]): Background;
  status(): Promise<{ state?: string; deviceId: string; serial: string }>;
}

export interface Background {
  proc: ChildProcess;
  log(): string;
  exit: Promise<number | null>;
  /** Resolves once the log matches `re`; throws with the log if the process ends first or after `ms`. */
  waitFor(re: RegExp, what: string, ms?: number): Promise<void>;
}

export function newAgent(t: TestCtx, name = 'agent'): Agent {
  const stateDir = join(tempDir(t, 'latchkey-agent-'), name);
  const argv = (args: string[]) => [AGENT_CLI, '--state-dir', stateDir, ...args];
  return {
    stateDir,
    cli: (args) => run(process.execPath, argv(args), { env }),
    start(args) {
      const proc = spawn(process.execPath, argv(args), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
      let log = '';
      proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
      proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
      const exit = new Promise<number | null>((r) => proc.on('exit', (c) => r(c)));
      t.after(() => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      });
      return {
        proc,
        log: () => log,
        exit,
        waitFor: (re, what, ms = 30_000) =>
          until(`${what} (latchkey ${args[0]})`, async () => {
            if (re.test(log)) return true;
            if (proc.exitCode !== null) throw new Error(`latchkey ${args[0]} exited ${proc.exitCode} before ${what}:\n${log}`);
            return undefined;
          }, ms).then(
            () => undefined,
            (e: Error) => {
              throw new Error(`${e.message}\n--- latchkey ${args[0]} log:\n${log}`);
            },
          ),
      };
    },
    async status() {
      const r = await run(process.execPath, argv(['status', '--json']), { env });
      return JSON.parse(r.stdout) as { state?: string; deviceId: string; serial: string };
    },
  };
}

/** The agent's certificate and its key, decrypted, as files in `dir`, for `curl --cert --key`. */
export async function copyCredentials(a: Agent, dir: string): Promise<{ cert: string; key: string }> {
  const id = JSON.parse(readFileSync(join(a.stateDir, 'identity.json'), 'utf8')) as { certPem: string; chainPem: string };
  const cert = join(dir, 'device.pem');
  writeFileSync(cert, id.certPem + id.chainPem);
  const keys = readdirSync(join(a.stateDir, 'keys')).filter((n) => n.endsWith('.key.pem'));
  if (keys.length !== 1) throw new Error(`expected one key in ${a.stateDir}/keys, found ${keys.join(', ') || 'none'}`);
  const key = join(dir, 'device.key');
  await mustRun('openssl', ['pkey', '-in', join(a.stateDir, 'keys', keys[0]!), '-passin', `pass:${PASSPHRASE}`, '-out', key]);
  return { cert, key };
}
