#!/usr/bin/env node
/**
 * latchkey-server: init, start, and admin subcommands (through the admin
 * API), from the table in cli/server-commands.ts. Exit codes: 0 ok,
 * 1 failure, 2 usage or configuration error. A failure is one line on
 * stderr; --debug adds the stack.
 */
import { ApiError, UsageError } from './admin-client.js';
import { createCli, helpHintOf } from '@latchkey/cli';
import { SERVER_CLI } from './cli/server-commands.js';
import { ConfigError } from './config/config-load.js';
import { terminalSafe } from './util/terminal-text.js';

const line = (s: string): string => (s.endsWith('\n') ? s : `${s}\n`);
const out = (s: string): void => void process.stdout.write(line(s));
const err = (s: string): void => void process.stderr.write(line(s));

/** The one line a failure prints, and its exit code. */
function failure(e: unknown): { message: string; code: number } {
  // Error messages can quote what a client sent (an id, a name): shown as safely as the tables.
  const text = terminalSafe(e instanceof Error ? e.message : String(e), { multiline: true });
  if (e instanceof UsageError || e instanceof ConfigError) return { message: text, code: 2 };
  if (e instanceof ApiError) return { message: `${text} (${e.code})`, code: 1 };
  return { message: text, code: 1 };
}

const argv = process.argv.slice(2);
const cli = createCli(SERVER_CLI, (o) => ({ o, env: process.env, out, err }), { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) });
cli(argv).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const f = failure(e);
    err(`latchkey-server: ${f.message}`);
    if (e instanceof UsageError && helpHintOf(e)) err(`(see ${helpHintOf(e)})`);
    if (argv.includes('--debug') && e instanceof Error && e.stack) err(e.stack);
    process.exit(f.code);
  },
);
