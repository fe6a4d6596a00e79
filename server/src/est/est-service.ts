/**
 * EST front-ends (RFC 7030): bootstrap enrollment with an enrollment token
 * (simpleenroll, est-enroll.ts), renewal and recovery with the device's
 * certificate (simplereenroll, est-reenroll.ts). Each decides who the device
 * is from the server's records, then hands off to the issuing pipeline.
 */
import { type EnrollInput, type EnrollResult, type EnrollmentDeps, createEnrollment } from './est-enroll.js';
import { type ReenrollInput, type Reenrolled, type ReenrollmentDeps, createReenrollment } from './est-reenroll.js';

export type { EnrollResult } from './est-enroll.js';
export { sanitizeDeviceName } from './est-fns.js';

export interface EstService {
  simpleEnroll(input: EnrollInput): Promise<EnrollResult>;
  simpleReenroll(input: ReenrollInput): Promise<Reenrolled>;
}

export function createEstService(deps: EnrollmentDeps & ReenrollmentDeps & { config: EnrollmentDeps['config'] & ReenrollmentDeps['config'] }): EstService {
  return { simpleEnroll: createEnrollment(deps), simpleReenroll: createReenrollment(deps) };
}
