/**
 * Firefox keeps its own NSS database in each profile (cert9.db, key4.db,
 * pkcs11.txt) and never reads ~/.pki/nssdb. Its profiles are listed in
 * `profiles.ini` under the Firefox root of each packaging:
 *   Linux   ~/.mozilla/firefox, the snap's ~/snap/firefox/common/.mozilla/firefox,
 *           the flatpak's ~/.var/app/org.mozilla.firefox/.mozilla/firefox
 *   macOS   ~/Library/Application Support/Firefox
 *   Windows %APPDATA%\Mozilla\Firefox
 * A `[ProfileN]` section names the directory in `Path=`, relative to the
 * root when `IsRelative=1`. The file is bounded (size, sections) and a path
 * is taken only if it is a directory that exists.
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { BrowserStoreError } from './cert-store.js';

/** profiles.ini is a few hundred bytes; anything past this is not one. */
export const MAX_PROFILES_INI = 64 * 1024;
/** Profiles taken from one profiles.ini at most. */
export const MAX_PROFILES = 64;

/** The directories that may hold a Firefox profiles.ini on `platform`. */
export function firefoxRoots(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME || homedir();
  if (platform === 'darwin') return [join(home, 'Library', 'Application Support', 'Firefox')];
  if (platform === 'win32') return [join(env.APPDATA || join(env.USERPROFILE || home, 'AppData', 'Roaming'), 'Mozilla', 'Firefox')];
  return [join(home, '.mozilla', 'firefox'), join(home, 'snap', 'firefox', 'common', '.mozilla', 'firefox'), join(home, '.var', 'app', 'org.mozilla.firefox', '.mozilla', 'firefox')];
}

/** The profile directories a profiles.ini names (absolute, in file order, no duplicates). */
export function parseProfilesIni(text: string, root: string): string[] {
  const out: string[] = [];
  let section: Record<string, string> | undefined;
  const flush = (): void => {
    if (!section?.Path) return;
    const p = section.IsRelative === '0' && isAbsolute(section.Path) ? section.Path : resolve(root, section.Path);
    if (!out.includes(p)) out.push(p);
  };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith(';') || line.startsWith('#')) continue;
    const head = /^\[([^\]]*)\]$/.exec(line);
    if (head) {
      flush();
      section = /^Profile\d+$/.test(head[1]!) ? {} : undefined;
      continue;
    }
    const eq = line.indexOf('=');
    if (section && eq > 0) section[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  flush();
  if (out.length > MAX_PROFILES) throw new BrowserStoreError('COMMAND_FAILED', `${join(root, 'profiles.ini')} names ${out.length} profiles, more than the ${MAX_PROFILES} latchkey handles; name the ones to use with --firefox-profile DIR`);
  return out;
}

const isDir = async (p: string): Promise<boolean> => (await stat(p).catch(() => undefined))?.isDirectory() ?? false;

/** The existing Firefox profile directories of this user, over every root. */
export async function findFirefoxProfiles(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): Promise<string[]> {
  const found: string[] = [];
  for (const root of firefoxRoots(platform, env)) {
    const ini = join(root, 'profiles.ini');
    const st = await stat(ini).catch(() => undefined);
    if (!st?.isFile()) continue;
    if (st.size > MAX_PROFILES_INI) throw new BrowserStoreError('COMMAND_FAILED', `${ini} is ${st.size} bytes, more than a profiles.ini can be (${MAX_PROFILES_INI}); check it, or name the profiles with --firefox-profile DIR`);
    for (const p of parseProfilesIni(await readFile(ini, 'utf8'), root)) if (!found.includes(p) && (await isDir(p))) found.push(p);
  }
  return found;
}
