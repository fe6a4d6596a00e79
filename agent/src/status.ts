/** `latchkey status`: what this device is, when it renews next, and what last went wrong. */
import { type ServerPolicyRecord, readIdentity, readStatusFile } from './state/identity.js';
import { summarize, userOf } from './identity-fns.js';
import { certOf, receivedAt } from './renew/renew.js';
import { renewPolicyOf, renewalTime } from './renew/should-renew.js';

export interface StatusJson {
  enrolled: boolean;
  state: 'not-enrolled' | 'active' | 'expired' | 'revoked' | 'reenroll-required';
  stateDir: string;
  deviceId?: string;
  /** The person the certificate names (its email SAN, from a sign-in); null when it names nobody. */
  user?: string | null;
  server?: string;
  rootFingerprint?: string;
  keystore?: string;
  keyId?: string;
  /** `tpm` when the device enrolled with a TPM attestation (its renewals are attested too). */
  attestation?: 'tpm';
  subject?: string;
  sans?: string[];
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  nextRenewalAt?: string;
  revokedAt?: string;
  lastRenewalAt?: string;
  lastCheckAt?: string;
  lastError?: { at: string; code: string; message: string };
  policy?: ServerPolicyRecord;
  /** The control channel of `latchkey run`, as the daemon last recorded it. */
  controlChannel?: { state: 'connected' | 'disconnected' | 'daemon-not-running'; since?: string; pid?: number };
}

/** Whether a process is alive (signal 0). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readStatus(stateDir: string, now: Date): Promise<StatusJson> {
  const id = await readIdentity(stateDir);
  const st = await readStatusFile(stateDir);
  if (!id && st?.state === 'revoked') {
    return {
      enrolled: false,
      state: 'revoked',
      stateDir,
      ...(st.deviceId ? { deviceId: st.deviceId } : {}),
      ...(st.server ? { server: st.server } : {}),
      ...(st.revokedAt ? { revokedAt: st.revokedAt } : {}),
      ...(st.lastError ? { lastError: st.lastError } : {}),
    };
  }
  if (!id) return { enrolled: false, state: 'not-enrolled', stateDir };
  const cert = certOf(id);
  const s = summarize(cert);
  const expired = now.getTime() >= cert.notAfter.getTime();
  const state = st && st.state !== 'active' ? st.state : expired ? 'expired' : 'active';
  return {
    enrolled: true,
    state,
    stateDir,
    deviceId: id.deviceId,
    user: userOf(cert) ?? null,
    server: id.server,
    rootFingerprint: id.rootFingerprint,
    keystore: id.keystore.kind,
    keyId: id.key.id,
    ...(id.attestation ? { attestation: id.attestation.kind } : {}),
    subject: s.subject,
    sans: s.sans,
    serial: s.serial,
    notBefore: s.notBefore.toISOString(),
    notAfter: s.notAfter.toISOString(),
    ...(state === 'active' || state === 'expired' ? { nextRenewalAt: renewalTime({ serialHex: cert.serialHex, notBefore: cert.notBefore, notAfter: cert.notAfter, receivedAt: receivedAt(id) }, renewPolicyOf(st?.policy)).toISOString() } : {}),
    ...(st?.policy ? { policy: st.policy } : {}),
    controlChannel: st?.channel && alive(st.channel.pid) ? { state: st.channel.connected ? 'connected' : 'disconnected', since: st.channel.since, pid: st.channel.pid } : { state: 'daemon-not-running' },
    ...(st?.lastRenewalAt ? { lastRenewalAt: st.lastRenewalAt } : {}),
    ...(st?.lastCheckAt ? { lastCheckAt: st.lastCheckAt } : {}),
    ...(st?.lastError ? { lastError: st.lastError } : {}),
  };
}

export function formatStatus(s: StatusJson): string {
  if (s.state === 'revoked' && !s.enrolled) {
    return `REVOKED: device ${s.deviceId ?? '?'} was revoked by ${s.server ?? 'the server'} at ${s.revokedAt ?? '?'}; its key and certificate are deleted\nenroll it again with: latchkey enroll --server URL --token T --ca-fingerprint SHA256`;
  }
  if (!s.enrolled) return `not enrolled (state in ${s.stateDir})\nenroll with: latchkey enroll --server URL --ca-fingerprint SHA256 --token T (or --sso to sign in)`;
  const rows: [string, string | undefined][] = [
    ['state', s.state],
    ['device id', s.deviceId],
    ['user', s.user ?? 'no user'],
    ['subject', s.subject],
    ['SANs', s.sans?.join(', ')],
    ['serial', s.serial],
    ['valid until', s.notAfter],
    ['next renewal', s.nextRenewalAt],
    ['keystore', `${s.keystore} (key ${s.keyId}${s.attestation === 'tpm' ? ', made in the TPM and attested' : ''})`],
    ['server', s.server],
    ['root SHA-256', s.rootFingerprint],
    ['last renewal', s.lastRenewalAt],
    [
      'control channel',
      s.controlChannel
        ? s.controlChannel.state === 'daemon-not-running'
          ? 'not open (`latchkey run` is not running)'
          : `${s.controlChannel.state} since ${s.controlChannel.since} (latchkey run, pid ${s.controlChannel.pid})`
        : undefined,
    ],
    ['group policy', s.policy ? `certificates live ${s.policy.certLifetimeSeconds} s, renewed at ${Math.round(s.policy.renewFraction * 100)}% (from the server, ${s.policy.receivedAt})` : undefined],
    ['last error', s.lastError ? `${s.lastError.at} ${s.lastError.code}: ${s.lastError.message}` : 'none'],
  ];
  return rows.filter(([, v]) => v !== undefined).map(([k, v]) => `${k.padEnd(13)} ${v}`).join('\n');
}
