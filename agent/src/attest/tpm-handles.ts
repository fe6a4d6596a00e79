/**
 * Persistent handles the agent owns in the owner hierarchy: its AK (one per
 * device, kept for every renewal) and the short-lived handle a device key
 * sits at while the AK certifies it (tpm2_send needs persistent handles:
 * a transient object does not outlive the tool that loaded it under a
 * resource manager). Both are taken from a range the agent alone uses.
 */
import type { TpmTools } from './tpm-tools.js';

/** Where the agent's AK goes (the first free handle from here). */
export const AK_HANDLE_RANGE = { first: 0x81010001, last: 0x810100ff } as const;
/** Where a device key sits while it is certified. */
export const CERTIFY_HANDLE_RANGE = { first: 0x81010100, last: 0x810101ff } as const;

export const handleHex = (h: number): string => `0x${h.toString(16).padStart(8, '0')}`;

export function parseHandle(s: string): number {
  if (!/^0x81[0-9a-fA-F]{6}$/.test(s)) throw new Error(`${s} is not a persistent handle (0x81xxxxxx)`);
  return Number.parseInt(s.slice(2), 16);
}

/** The persistent handles in use (tpm2_getcap handles-persistent). */
export async function persistentHandles(tools: TpmTools): Promise<Set<number>> {
  const out = await tools.run('tpm2_getcap', ['handles-persistent'], { step: 'TPM2_GetCapability (persistent handles)', hint: 'check that the TPM is reachable (TPM2TOOLS_TCTI, or /dev/tpmrm0 and its permissions)' });
  return new Set([...out.toString('utf8').matchAll(/0x([0-9a-fA-F]{8})/g)].map((m) => Number.parseInt(m[1]!, 16)));
}

export async function freeHandle(tools: TpmTools, range: { first: number; last: number }): Promise<number> {
  const used = await persistentHandles(tools);
  for (let h = range.first; h <= range.last; h++) if (!used.has(h)) return h;
  throw new Error(`no free persistent handle in ${handleHex(range.first)}–${handleHex(range.last)}`);
}

/** Removes a persistent object of ours; true if there was one. */
export async function evictQuietly(tools: TpmTools, handle: number): Promise<boolean> {
  const r = await tools.attempt('tpm2_evictcontrol', ['-C', 'o', '-c', handleHex(handle)]);
  return r.code === 0;
}
