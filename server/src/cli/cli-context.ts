/**
 * What every latchkey-server command gets (its options, the environment,
 * stdout and stderr), and the option helpers the command tables share: how
 * admin commands find the running server, durations, counts.
 */
import { InvalidArgumentError, Option, type CommandSpec } from '@latchkey/cli';
import { UsageError, adminClientFrom, type AdminClient } from '../admin-client.js';
import { durationSeconds, printer, type Printer } from './cli-output.js';

export interface ServerCliCtx {
  /** The command's options with the global ones. */
  o: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  out: (s: string) => void;
  err: (s: string) => void;
}

export type Cmd = CommandSpec<ServerCliCtx>;

export const str = (o: Record<string, unknown>, k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
export const need = (o: Record<string, unknown>, k: string, flag: string, what: string): string => {
  const s = str(o, k);
  if (!s) throw new UsageError(`${flag} is required (${what})`);
  return s;
};

export const duration = (v: string): string => {
  if (durationSeconds(v) === undefined) throw new InvalidArgumentError('It must look like 30m, 24h or 7d.');
  return v;
};
export const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('It must be a positive integer.');
  return n;
};

/** How admin commands find the running server and what they print. */
export const adminOptions = (): Option[] => [
  new Option('--data-dir <dir>', "the server's data dir: URL, CA and bootstrap admin token come from it (on the server host)"),
  new Option('--server <url>', 'the server, https://HOST:PORT (as signed in with `login`, or with LATCHKEY_ADMIN_TOKEN); env LATCHKEY_SERVER'),
  new Option('--ca-file <file>', "the root CA to trust for --server (PEM)"),
  new Option('--json', 'print only JSON on stdout'),
];

export function admin(ctx: ServerCliCtx): { api: AdminClient; p: Printer } {
  const { o } = ctx;
  const api = adminClientFrom({ ...(str(o, 'dataDir') ? { dataDir: str(o, 'dataDir')! } : {}), ...(str(o, 'server') ? { server: str(o, 'server')! } : {}), ...(str(o, 'caFile') ? { caFile: str(o, 'caFile')! } : {}), env: ctx.env });
  return { api, p: printer(!!o.json, ctx.out, ctx.err) };
}

