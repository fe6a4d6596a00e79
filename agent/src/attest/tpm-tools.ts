/**
 * tpm2-tools (and tpm2_ptool) as child processes, with the rules every TPM
 * step of the agent follows:
 * - no secret on a command line (`ps` shows it): auth values go in 0600
 *   files of a 0700 work dir (`-p file:…`) or on stdin, and tpm2_ptool runs
 *   in-process in its own Python with its arguments on stdin;
 * - the TCTI is the agent's (`tpmTcti` / LATCHKEY_TPM_TCTI → TPM2TOOLS_TCTI),
 *   else the tools' default (the kernel resource manager, /dev/tpmrm0);
 * - a failure is an AgentError naming the TPM step and what to do, with any
 *   secret the step knew scrubbed from the tool's message.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AgentError } from '../errors.js';

export interface ToolResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface TpmStep {
  /** The TPM command in words, for messages: "TPM2_ActivateCredential". */
  step: string;
  /** What the user should do when it fails. */
  hint: string;
  /** Values to scrub from any message (auth values, PINs). */
  secrets?: string[];
}

export interface TpmTools {
  /** Runs a tpm2-tools command in the work dir; its stdout, or an AgentError for `step`. */
  run(cmd: string, args: string[], step: TpmStep, input?: Buffer): Promise<Buffer>;
  /** Runs a command and reports how it went, never throwing for a non-zero exit. */
  attempt(cmd: string, args: string[], input?: Buffer): Promise<ToolResult>;
  /** `tpm2_ptool <args>` with the arguments on stdin (they hold the PIN and the key's auth). */
  ptool(args: string[], step: TpmStep): Promise<Buffer>;
  readonly cwd: string;
}

export interface TpmToolsOptions {
  /** Work dir of the commands (0700, holding their temp files). */
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** TPM2TOOLS_TCTI for the tools; undefined = what the environment says, or the tools' default. */
  tcti?: string | undefined;
  timeoutMs?: number;
  /** Test seam: how a process is run. */
  exec?: (cmd: string, args: string[], o: { cwd: string; env: NodeJS.ProcessEnv; input?: Buffer; timeoutMs: number }) => Promise<ToolResult>;
}

const MAX_OUTPUT = 1024 * 1024;

export function execTool(cmd: string, args: string[], o: { cwd: string; env: NodeJS.ProcessEnv; input?: Buffer; timeoutMs: number }): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let size = 0;
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
      if (size <= MAX_OUTPUT) out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-8000);
    });
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, stdout: Buffer.alloc(0), stderr: (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${cmd} is not installed` : e.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: signal ? `${err}\n${cmd} was stopped (${signal}) after ${o.timeoutMs} ms` : err });
    });
    child.stdin.end(o.input ?? Buffer.alloc(0));
  });
}

/** The Python interpreter tpm2_ptool is installed for (its #! line), or python3. */
export function ptoolPython(env: NodeJS.ProcessEnv): string {
  for (const dir of (env.PATH ?? '/usr/bin').split(':')) {
    try {
      const first = readFileSync(`${dir}/tpm2_ptool`, 'utf8').split('\n', 1)[0] ?? '';
      const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(first);
      if (m) return m[1]!.endsWith('/env') && m[2] ? m[2] : m[1]!;
    } catch {
      // not in this dir
    }
  }
  return 'python3';
}

/**
 * tpm2_ptool's own tpm2-tools calls put the token's seal auth (a hash of the
 * PIN) on tpm2_unseal's command line; this wrapper hands it over on stdin
 * instead (`-p file:-`), then runs tpm2_ptool's main with the JSON argument
 * list read from our stdin.
 */
const PTOOL_MAIN = [
  'import sys, json',
  'args = json.load(sys.stdin)',
  'from subprocess import Popen, PIPE',
  'import os',
  'from tpm2_pkcs11 import tpm2 as _t',
  'def _unseal(self, ctx, auth):',
  "    p = Popen(['tpm2_unseal', '-c', ctx, '-p', 'file:-'], stdin=PIPE, stdout=PIPE, stderr=PIPE, env=os.environ)",
  '    stdout, stderr = p.communicate(auth.encode() if isinstance(auth, str) else auth)',
  '    if p.wait():',
  "        raise RuntimeError('Could not execute tpm2_unseal: %s' % stderr)",
  '    return stdout',
  '_t.Tpm2.unseal = _unseal',
  "sys.argv = ['tpm2_ptool'] + args",
  'from tpm2_pkcs11.tpm2_ptool import main',
  'main()',
].join('\n');

export function scrub(text: string, secrets: readonly string[]): string {
  let t = text;
  for (const s of secrets) if (s.length >= 4) t = t.split(s).join('[redacted]');
  return t;
}

/** The last meaningful lines of a tool's stderr, for a message. */
function gist(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^\s*File "|^Traceback|^\^+$/.test(l));
  return lines.slice(-3).join('; ').slice(0, 600) || 'no output';
}

export function createTpmTools(o: TpmToolsOptions): TpmTools {
  const env: NodeJS.ProcessEnv = { ...o.env, ...(o.tcti ? { TPM2TOOLS_TCTI: o.tcti } : {}) };
  const exec = o.exec ?? execTool;
  const timeoutMs = o.timeoutMs ?? 60_000;
  const fail = (cmd: string, r: ToolResult, s: TpmStep): AgentError => {
    const why = r.code === null && /is not installed/.test(r.stderr) ? r.stderr : gist(r.stderr);
    return new AgentError('TPM', scrub(`the TPM refused ${s.step} (${cmd}: ${why}); ${s.hint}`, s.secrets ?? []));
  };
  return {
    cwd: o.cwd,
    attempt: (cmd, args, input) => exec(cmd, args, { cwd: o.cwd, env, ...(input ? { input } : {}), timeoutMs }),
    async run(cmd, args, step, input) {
      const r = await exec(cmd, args, { cwd: o.cwd, env, ...(input ? { input } : {}), timeoutMs });
      if (r.code !== 0) throw fail(cmd, r, step);
      return r.stdout;
    },
    async ptool(args, step) {
      const r = await exec(ptoolPython(env), ['-c', PTOOL_MAIN], { cwd: o.cwd, env, input: Buffer.from(JSON.stringify(args)), timeoutMs });
      if (r.code !== 0) throw fail(`tpm2_ptool ${args[0] ?? ''}`, r, step);
      return r.stdout;
    },
  };
}
