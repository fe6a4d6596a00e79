/**
 * TPMS_ATTEST (Part 2 §10.12.12): what a TPM signs in TPM2_Certify and its
 * siblings. Only TPM_ST_ATTEST_CERTIFY bodies are read; another type is
 * refused by name, since its body could not be checked here.
 */
import { ST_ATTEST, TPM_GENERATED_VALUE } from './constants.js';
import { TpmError } from './errors.js';
import { Reader, Writer, checkSize } from './marshal.js';

export const MAX_ATTEST_BYTES = 1024;
/** sizeof(TPMU_NAME): a handle or a nameAlg and a digest of up to 64 bytes. */
const MAX_NAME = 66;
const MAX_DATA = 64;

export interface ClockInfo {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
}

export interface CertifyAttest {
  magic: number;
  type: typeof ST_ATTEST.CERTIFY;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clockInfo: ClockInfo;
  firmwareVersion: bigint;
  attested: { name: Buffer; qualifiedName: Buffer };
}

const ST_NAMES = new Map<number, string>(Object.entries(ST_ATTEST).map(([k, v]) => [v, `TPM_ST_ATTEST_${k}`]));

/** Parses a marshalled TPMS_ATTEST (what `tpm2_certify -o` writes). */
export function parseAttest(input: Uint8Array): CertifyAttest {
  const r = new Reader(checkSize(input, MAX_ATTEST_BYTES, 'TPMS_ATTEST'), 'TPMS_ATTEST');
  const magic = r.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) {
    throw new TpmError('TPM_MALFORMED', `TPMS_ATTEST: magic is 0x${magic.toString(16)}, not TPM_GENERATED_VALUE (0xff544347): this was not made by a TPM`);
  }
  const type = r.u16('type');
  if (type !== ST_ATTEST.CERTIFY) {
    const name = ST_NAMES.get(type) ?? `0x${type.toString(16)}`;
    throw new TpmError('TPM_UNSUPPORTED', `TPMS_ATTEST: type is ${name}; only TPM_ST_ATTEST_CERTIFY (from TPM2_Certify) is read`);
  }
  const qualifiedSigner = r.tpm2b('qualifiedSigner', MAX_NAME);
  const extraData = r.tpm2b('extraData', MAX_DATA);
  const clock = r.u64('clockInfo.clock');
  const resetCount = r.u32('clockInfo.resetCount');
  const restartCount = r.u32('clockInfo.restartCount');
  const safeByte = r.u8('clockInfo.safe');
  if (safeByte > 1) throw new TpmError('TPM_MALFORMED', `TPMS_ATTEST: clockInfo.safe is ${safeByte}, not YES (1) or NO (0)`);
  const firmwareVersion = r.u64('firmwareVersion');
  const name = r.tpm2b('attested.certify.name', MAX_NAME);
  const qualifiedName = r.tpm2b('attested.certify.qualifiedName', MAX_NAME);
  r.end();
  return {
    magic,
    type,
    qualifiedSigner,
    extraData,
    clockInfo: { clock, resetCount, restartCount, safe: safeByte === 1 },
    firmwareVersion,
    attested: { name, qualifiedName },
  };
}

/** Marshals a certify TPMS_ATTEST (tests build attestations with it; the inverse of parseAttest). */
export function encodeAttest(a: Omit<CertifyAttest, 'magic' | 'type'> & { magic?: number; type?: number }): Buffer {
  return new Writer()
    .u32(a.magic ?? TPM_GENERATED_VALUE)
    .u16(a.type ?? ST_ATTEST.CERTIFY)
    .tpm2b(a.qualifiedSigner)
    .tpm2b(a.extraData)
    .u64(a.clockInfo.clock)
    .u32(a.clockInfo.resetCount)
    .u32(a.clockInfo.restartCount)
    .u8(a.clockInfo.safe ? 1 : 0)
    .u64(a.firmwareVersion)
    .tpm2b(a.attested.name)
    .tpm2b(a.attested.qualifiedName)
    .done();
}
