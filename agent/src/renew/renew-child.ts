/**
 * One renewal in a child process (`latchkey renew --json`), for the daemon
 * on a pkcs11 keystore: OpenSSL's pkcs11 engine (libp11 0.4.12) caches a
 * token's objects at its first key load, so in a long-lived process it never
 * sees keys made later on tpm2-pkcs11 tokens. A child per renewal starts
 * clean; it also keeps a misbehaving token driver out of the daemon.
 */
import { spawn } from 'node:child_process';
import { isSea } from 'node:sea';
import { AGENT_ERRORS, AgentError, type AgentErrorCode } from '../errors.js';
import type { RenewOutcome } from './daemon.js';

export interface RenewJson {
  renewed: boolean;
  kind?: 'renew' | 'recover';
  previousSerial?: string;
  serial?: string;
  error?: { code: string; message: string; details?: AgentError['details'] };
}

/** How to run this same program again. */
export function selfArgv(): string[] {
  return isSea() || !process.argv[1] ? [process.execPath] : [process.execPath, process.argv[1]];
}

export function renewInChild(stateDir: string, env: NodeJS.ProcessEnv, force = false, argv: string[] = selfArgv()): Promise<RenewOutcome> {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0]!, [...argv.slice(1), '--state-dir', stateDir, 'renew', '--json', ...(force ? ['--force'] : [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', (e) => reject(new AgentError('KEYSTORE', `cannot start the renewal process: ${e.message}`, {}, { cause: e })));
    p.on('close', (code, signal) => {
      let j: RenewJson | undefined;
      try {
        j = JSON.parse(out) as RenewJson;
      } catch {
        j = undefined;
      }
      if (j?.error) {
        const c = (j.error.code in AGENT_ERRORS ? j.error.code : 'SERVER_ERROR') as AgentErrorCode;
        return reject(new AgentError(c, j.error.message, j.error.details ?? {}));
      }
      if (code === 0 && j) {
        return resolve(j.renewed ? { renewed: true, kind: j.kind ?? 'renew', previousSerial: j.previousSerial ?? '' } : { renewed: false });
      }
      reject(new AgentError('KEYSTORE', `the renewal process ended ${signal ? `by ${signal}` : `with exit code ${code}`}: ${err.trim().slice(-500) || 'no output'}`));
    });
  });
}
