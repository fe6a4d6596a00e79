/**
 * The token worker's message protocol, both directions, in one place.
 *
 * The worker (`latchkey _token-worker`) is a child process that does the
 * agent's TLS with a key it loads fresh: OpenSSL's pkcs11 engine (libp11)
 * never sees a key made after its first load in a process, so work that
 * presents the device key over TLS runs in a worker started after the key
 * last changed. Messages travel over Node's IPC channel (JSON); a `connect`
 * request carries the local socket as the channel's handle.
 *
 * Every message is checked against the types below and MAX_MESSAGE_BYTES on
 * both sides; errors travel as an AgentErrorCode, so the parent rethrows the
 * error the work raised in the worker.
 */
import { type AgentPolicy, agentPolicyOf } from '@latchkey/protocol/wire';
import { AGENT_ERRORS, AgentError, type AgentErrorCode } from '../errors.js';
import type { RenewOutcome } from '../renew/daemon.js';

/** A message larger than this (serialized) is refused by both ends; an extra CA file for `connect` is the largest thing sent. */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** The hidden subcommand that runs the worker. */
export const WORKER_COMMAND = '_token-worker';

export interface ConnectTarget {
  to: { host: string; port: number };
  servername?: string;
  extraCaPem?: string;
}

/** Parent → worker. `id` pairs a request with its reply. */
export type WorkerRequest =
  | { id: number; op: 'renew'; force: boolean }
  /** Start the control channel; its events follow as `channel` messages. */
  | { id: number; op: 'channel' }
  /** Dial the gateway with the device key and splice it with the socket sent alongside; replies when both are closed. */
  | ({ id: number; op: 'connect' } & ConnectTarget);

export type ChannelEvent =
  | { kind: 'connected' }
  | { kind: 'disconnected' }
  | { kind: 'revoked'; reason: string; at: string }
  | { kind: 'renew-now'; reason?: string }
  | ({ kind: 'policy' } & AgentPolicy);

export interface WireError {
  code: AgentErrorCode;
  message: string;
  details?: AgentError['details'];
}

export interface ConnectResult {
  up: number;
  down: number;
  /** Why the gateway refused, when it hung up before its first byte (already in words a person can act on). */
  refused?: string;
}

export type WorkerReply =
  | { id: number; ok: true; renew: RenewOutcome }
  | { id: number; ok: true; channel: 'started' }
  | { id: number; ok: true; connect: ConnectResult }
  | { id: number; ok: false; error: WireError };

/** Worker → parent. */
export type WorkerMessage = WorkerReply | { event: 'log'; line: string } | { event: 'channel'; channel: ChannelEvent };

// ------------------------------------------------------------ checks

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const optStr = (v: unknown): boolean => v === undefined || isStr(v);

function fits(m: unknown): boolean {
  try {
    return JSON.stringify(m).length <= MAX_MESSAGE_BYTES;
  } catch {
    return false;
  }
}

export function isWorkerRequest(m: unknown): m is WorkerRequest {
  if (!isObj(m) || !isNum(m.id) || !fits(m)) return false;
  switch (m.op) {
    case 'renew':
      return typeof m.force === 'boolean';
    case 'channel':
      return true;
    case 'connect':
      return isObj(m.to) && isStr(m.to.host) && isNum(m.to.port) && optStr(m.servername) && optStr(m.extraCaPem);
    default:
      return false;
  }
}

function isChannelEvent(e: unknown): e is ChannelEvent {
  if (!isObj(e)) return false;
  switch (e.kind) {
    case 'connected':
    case 'disconnected':
      return true;
    case 'revoked':
      return isStr(e.reason) && isStr(e.at);
    case 'renew-now':
      return optStr(e.reason);
    case 'policy':
      return agentPolicyOf(e) !== undefined;
    default:
      return false;
  }
}

function isRenewOutcome(r: unknown): r is RenewOutcome {
  if (!isObj(r)) return false;
  return r.renewed === false || (r.renewed === true && (r.kind === 'renew' || r.kind === 'recover') && isStr(r.previousSerial));
}

export function isWorkerMessage(m: unknown): m is WorkerMessage {
  if (!isObj(m) || !fits(m)) return false;
  if (m.event === 'log') return isStr(m.line);
  if (m.event === 'channel') return isChannelEvent(m.channel);
  if (!isNum(m.id)) return false;
  if (m.ok === false) return isObj(m.error) && isStr(m.error.code) && m.error.code in AGENT_ERRORS && isStr(m.error.message) && (m.error.details === undefined || isObj(m.error.details));
  if (m.ok !== true) return false;
  if ('renew' in m) return isRenewOutcome(m.renew);
  if ('channel' in m) return m.channel === 'started';
  if ('connect' in m) return isObj(m.connect) && isNum(m.connect.up) && isNum(m.connect.down) && optStr(m.connect.refused);
  return false;
}

// ------------------------------------------------------------ errors

/** An error raised in the worker, as it travels: an AgentError keeps its code; anything else (a token driver failing) is a KEYSTORE error. */
export function toWireError(e: unknown): WireError {
  if (e instanceof AgentError) return { code: e.code, message: e.message, ...(Object.keys(e.details).length ? { details: e.details } : {}) };
  return { code: 'KEYSTORE', message: e instanceof Error ? e.message : String(e) };
}

export function fromWireError(e: WireError): AgentError {
  return new AgentError(e.code, e.message, e.details ?? {});
}
