/**
 * One error type for the server, with codes from the shared registry in
 * @latchkey/protocol. The fastify error handler maps it to
 * `{ error: { code, message }, reqId }`; 5xx details stay in the log.
 */
import { ERROR_CODES, type ErrorCode } from '@latchkey/protocol';
import { PkiError, type PkiErrorCode } from '@latchkey/pki';

export class LatchkeyError extends Error {
  override readonly name = 'LatchkeyError';
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers (e.g. Retry-After). */
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; status?: number; headers?: Record<string, string> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options?.status ?? ERROR_CODES[code].status;
    this.headers = options?.headers;
  }
}

const PKI_TO_CODE: Record<PkiErrorCode, ErrorCode> = {
  PEM_INVALID: 'CSR_MALFORMED',
  DER_MALFORMED: 'CSR_MALFORMED',
  INPUT_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  SIGNATURE_INVALID: 'CSR_BAD_SIGNATURE',
  ALGORITHM_UNSUPPORTED: 'CSR_POLICY',
  KEY_MISMATCH: 'BAD_REQUEST',
  CA_INVALID: 'INTERNAL',
  CHAIN_INVALID: 'BAD_REQUEST',
  CSR_POLICY: 'CSR_POLICY',
  OCSP_MALFORMED: 'OCSP_MALFORMED',
  PKCS7_INVALID: 'BAD_REQUEST',
  ARGUMENT_INVALID: 'BAD_REQUEST',
};

/** A PkiError raised while handling a CSR, as the API reports it. */
export function fromCsrError(e: unknown): unknown {
  if (!(e instanceof PkiError)) return e;
  const code = PKI_TO_CODE[e.code];
  const prefix = code === 'CSR_MALFORMED' ? 'the CSR cannot be parsed: ' : code === 'CSR_BAD_SIGNATURE' ? '' : 'CSR refused: ';
  return new LatchkeyError(code, prefix + e.message, { cause: e });
}
