/**
 * One error type for everything the PKI core refuses. Callers switch on
 * `code`; `message` is written for the person who has to fix the input.
 */
export const PKI_ERROR_CODES = {
  PEM_INVALID: 'text is not PEM, or not the PEM block expected',
  DER_MALFORMED: 'bytes are not valid DER for the structure expected',
  INPUT_TOO_LARGE: 'input is larger than the limit for its kind',
  SIGNATURE_INVALID: 'a signature does not verify',
  ALGORITHM_UNSUPPORTED: 'an algorithm or key type is not supported',
  KEY_MISMATCH: 'a private key does not belong to the certificate',
  CA_INVALID: 'a CA certificate is not usable as an issuing CA',
  CHAIN_INVALID: 'a certificate does not chain to the given root',
  CSR_POLICY: 'a CSR asks for something the policy forbids',
  OCSP_MALFORMED: 'an OCSP request cannot be parsed',
  PKCS7_INVALID: 'a PKCS#7 structure is not a certs-only SignedData',
  ARGUMENT_INVALID: 'a caller passed an invalid argument',
} as const;

export type PkiErrorCode = keyof typeof PKI_ERROR_CODES;

export class PkiError extends Error {
  override readonly name = 'PkiError';
  readonly code: PkiErrorCode;
  /** For CSR_POLICY: which rule was broken. */
  readonly rule: string | undefined;

  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown; rule?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.rule = options?.rule;
  }
}

export function isPkiError(e: unknown, code?: PkiErrorCode): e is PkiError {
  return e instanceof PkiError && (code === undefined || e.code === code);
}

/** Runs `fn`, turning any non-PkiError thrown by a parser into `code`. */
export function wrapParse<T>(code: PkiErrorCode, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof PkiError) throw e;
    const detail = e instanceof Error ? e.message : String(e);
    throw new PkiError(code, `${what}: ${detail}`, { cause: e });
  }
}
