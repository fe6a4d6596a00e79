/**
 * macOS managed preferences (issue 15): an MDM configuration profile with a
 * payload for the domain `com.latchkey.agent` (Jamf "Application & Custom
 * Settings", a Custom Settings payload in Intune, any MDM's
 * com.apple.ManagedClient.preferences) is written by macOS to
 * `/Library/Managed Preferences/com.latchkey.agent.plist`, often as a binary
 * plist. Its keys are the enroll file's (enroll-file.ts), the token again
 * only by reference (`tokenFile`, absolute: the profile's plist can be read
 * by every user). Keys Apple reserves for payloads (`Payload…`) are ignored.
 * Read with the bounded plist reader (plist.ts), checked like an enroll file.
 */
import { AgentError } from '../errors.js';
import { type EnrollFile, parseEnrollFile, readSettingsFile } from './enroll-file.js';
import { type PlistValue, PlistError, parsePlist } from './plist.js';

export const MANAGED_PREFERENCES_DOMAIN = 'com.latchkey.agent';

/** Where macOS puts the profile's settings; no managed preferences elsewhere (LATCHKEY_MANAGED_PREFERENCES names a file on any platform). */
export function defaultManagedPreferences(platform: NodeJS.Platform): string | undefined {
  return platform === 'darwin' ? `/Library/Managed Preferences/${MANAGED_PREFERENCES_DOMAIN}.plist` : undefined;
}

/** Plain objects (null-prototype dicts made ordinary) for the schema; other values as they are. */
const plain = (v: PlistValue): unknown =>
  Array.isArray(v) ? v.map(plain) : v && typeof v === 'object' && !Buffer.isBuffer(v) && !(v instanceof Date) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;

/** The enrollment settings of the managed preferences at `path`, or undefined if there are none. */
export function readManagedPreferences(path: string): EnrollFile | undefined {
  const source = 'the managed preferences' as const;
  const buf = readSettingsFile(path, source);
  if (!buf) return undefined;
  let v: PlistValue;
  try {
    v = parsePlist(buf);
  } catch (e) {
    if (!(e instanceof PlistError)) throw e;
    throw new AgentError('USAGE', `${source} ${path}: is not a property list the agent can read (${e.message}); check the ${MANAGED_PREFERENCES_DOMAIN} configuration profile`);
  }
  const o = plain(v);
  if (o && typeof o === 'object' && !Array.isArray(o) && !Buffer.isBuffer(o) && !(o instanceof Date)) {
    for (const k of Object.keys(o)) if (k.startsWith('Payload')) delete (o as Record<string, unknown>)[k];
  }
  return parseEnrollFile(o, path, source);
}
