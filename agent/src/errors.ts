/**
 * The agent's one error type. Each code maps to an exit code of the CLI
 * contract (docs/architecture.md "The CLI contract": 0 ok, 1 failure, 2 usage) plus 3: this device must be
 * enrolled again (revoked, or expired past the recovery window), which a
 * service manager or an IT script must be able to tell from a transient
 * failure.
 */
export const AGENT_ERRORS = {
  USAGE: { exit: 2 },
  NOT_ENROLLED: { exit: 1 },
  ALREADY_ENROLLED: { exit: 1 },
  SERVER_UNREACHABLE: { exit: 1 },
  SERVER_ERROR: { exit: 1 },
  SERVER_REFUSED: { exit: 1 },
  CA_MISMATCH: { exit: 1 },
  CA_UNTRUSTED: { exit: 1 },
  STATE_LOCKED: { exit: 1 },
  STATE_CORRUPT: { exit: 1 },
  KEYSTORE: { exit: 1 },
  /** A TPM step of an attested enrollment or renewal failed (agent/src/attest/). */
  TPM: { exit: 1 },
  REENROLL_REQUIRED: { exit: 3 },
} as const;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

export class AgentError extends Error {
  override readonly name = 'AgentError';
  constructor(
    readonly code: AgentErrorCode,
    message: string,
    readonly details: { serverCode?: string; status?: number; retryAfterSeconds?: number } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  get exitCode(): number {
    return AGENT_ERRORS[this.code].exit;
  }
}

export const EXIT_REENROLL = AGENT_ERRORS.REENROLL_REQUIRED.exit;

/** A subsystem's own error (keystore, service, browser store): a code of its registry and a message saying what to do. */
export class CodedError<C extends string> extends Error {
  constructor(
    readonly code: C,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
