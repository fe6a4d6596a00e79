/**
 * One error type for everything the TPM verification code refuses. Callers
 * switch on `code`; `message` is written for the person who has to fix the
 * input (which structure, which field, what was expected).
 */
export const TPM_ERROR_CODES = {
  TPM_MALFORMED: 'bytes are not the TPM 2.0 structure expected (truncated, oversized, trailing bytes or a bad field)',
  TPM_UNSUPPORTED: 'an algorithm, key type or structure variant is not supported',
  SIGNATURE_INVALID: 'a TPM signature does not verify',
  ATTESTATION_INVALID: 'an attestation does not say what the verifier expects',
  CHAIN_INVALID: 'an EK certificate does not chain to a trusted TPM manufacturer root',
  ARGUMENT_INVALID: 'a caller passed an invalid argument',
} as const;

export type TpmErrorCode = keyof typeof TPM_ERROR_CODES;

export class TpmError extends Error {
  override readonly name = 'TpmError';
  readonly code: TpmErrorCode;

  constructor(code: TpmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export function isTpmError(e: unknown, code?: TpmErrorCode): e is TpmError {
  return e instanceof TpmError && (code === undefined || e.code === code);
}
