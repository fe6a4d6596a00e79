#!/usr/bin/env node
/**
 * `latchkey`: the device agent's command line, from the table in
 * cli/agent-commands.ts. Exit codes: 0 ok, 1 failure, 2 usage, 3 this
 * device must be enrolled again (revoked, or expired past the recovery
 * window). An expected failure (server unreachable, no D-Bus session,
 * locked keyring, wrong PKCS#11 module, token or PIN) is one line on
 * stderr; --debug adds the stack.
 */
import { homedir } from 'node:os';
import { createCli, helpHintOf } from '@latchkey/cli';
import { AGENT_CLI } from './cli/agent-commands.js';
import { loadAgentConfig } from './config/agent-config.js';
import { AgentError } from './errors.js';
import { KeystoreError } from './keystore/keystore.js';

const line = (s: string): string => (s.endsWith('\n') ? s : `${s}\n`);
const out = (s: string): void => void process.stdout.write(line(s));
const err = (s: string): void => void process.stderr.write(line(s));

/** The one line a failure prints, and its exit code. */
function failure(e: unknown): { message: string; code: number } {
  if (e instanceof AgentError) return { message: e.message, code: e.exitCode };
  if (e instanceof KeystoreError) return { message: e.message, code: 1 };
  return { message: `unexpected error: ${e instanceof Error ? e.message : String(e)} (run again with --debug for the stack)`, code: 1 };
}

const argv = process.argv.slice(2);
const cli = createCli(
  AGENT_CLI,
  (o) => {
    const s = (k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
    const cfg = loadAgentConfig({
      flags: { stateDir: s('stateDir'), config: s('config'), keystore: s('keystore'), pkcs11Module: s('pkcs11Module'), pkcs11Token: s('pkcs11Token'), attest: s('attest'), tpmTcti: s('tpmTcti'), tpmParent: s('tpmParent'), enrollFile: s('enrollFile'), debug: !!o.debug },
      env: process.env,
      host: { platform: process.platform, home: homedir(), system: process.getuid?.() === 0 },
    });
    return { cfg, o, env: process.env, out, log: err };
  },
  { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) },
);
cli(argv).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const f = failure(e);
    err(`latchkey: ${f.message}`);
    if (e instanceof AgentError && e.code === 'USAGE' && helpHintOf(e)) err(`(see ${helpHintOf(e)})`);
    if (argv.includes('--debug') && e instanceof Error && e.stack) err(e.stack);
    process.exit(f.code);
  },
);
