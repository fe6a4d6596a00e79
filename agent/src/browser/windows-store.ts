/**
 * Windows: the user's personal certificate store (Cert:\CurrentUser\My),
 * which Edge and Chrome use, through Windows PowerShell's PKI module.
 *
 * - Import: `Import-PfxCertificate` without `-Exportable`, so the private key
 *   is marked non-exportable. The bundle password is read from stdin inside
 *   the script, so it is in no argv (certutil -importPFX would need `-p`).
 *   Scripts go in `-EncodedCommand` (UTF-16LE base64): no quoting of paths.
 * - PKCS#12 profile 'aes256-sha256' (Windows 10 1709 / Server 2019 and later
 *   read AES-256 + SHA-256 MAC bundles).
 * - Ours = certificates in the store whose SAN names this device; the new one
 *   is imported first, then older ones are removed by thumbprint with
 *   `Remove-Item -DeleteKey` (certificate and key).
 * - A key on a PKCS#11 token: not supported (the store would need the
 *   vendor's CSP / minidriver; the agent's token cannot be handed over).
 */
import { parseCertificate } from '@latchkey/pki';
import { deviceIdOf } from '../identity-fns.js';
import { BrowserStoreError, type BrowserCredential, type CertStore, type CertStoreStatus, type Runner, type StoreEntry, checkDeviceId, commandFailed, entryLabel, entryOf, withPrivateDir, writeDeviceBundle } from './cert-store.js';

export const WINDOWS_STORE = 'Cert:\\CurrentUser\\My';

export const TOKEN_UNSUPPORTED_WINDOWS =
  'the device key is on a PKCS#11 token (keystore pkcs11) and cannot leave it, and the Windows certificate store reaches token keys only through the vendor\'s smart-card minidriver: putting this identity in the Windows store is not supported';

export interface WindowsStoreOptions {
  run: Runner;
  tmp?: string;
}

/** `powershell.exe` argv for a script: no profile, no prompts, the script UTF-16LE base64-encoded. */
export function powershellArgs(script: string): string[] {
  return ['-NoLogo', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-EncodedCommand', Buffer.from(script, 'utf16le').toString('base64')];
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const THUMBPRINT = /^[0-9A-F]{40}$/;

export const SCRIPTS = {
  list: `$ErrorActionPreference = 'Stop'
Get-ChildItem -Path '${WINDOWS_STORE}' | ForEach-Object { $_.Thumbprint + ' ' + [Convert]::ToBase64String($_.RawData) }`,
  import: (bundle: string, label: string): string => `$ErrorActionPreference = 'Stop'
$password = ConvertTo-SecureString -String ([Console]::In.ReadLine()) -AsPlainText -Force
$imported = Import-PfxCertificate -FilePath ${quote(bundle)} -CertStoreLocation '${WINDOWS_STORE}' -Password $password
foreach ($c in $imported) { $c.FriendlyName = ${quote(label)}; $c.Thumbprint }`,
  remove: (thumbprints: string[]): string => {
    for (const t of thumbprints) if (!THUMBPRINT.test(t)) throw new Error(`not a thumbprint: ${t}`);
    return `$ErrorActionPreference = 'Stop'
foreach ($t in @(${thumbprints.map(quote).join(', ')})) { Remove-Item -Path ('${WINDOWS_STORE}\\' + $t) -DeleteKey }`;
  },
};

export function createWindowsStore(o: WindowsStoreOptions): CertStore {
  const ps = (script: string, input?: string) => o.run('powershell.exe', powershellArgs(script), input === undefined ? {} : { input });

  const ours = async (deviceId: string): Promise<StoreEntry[]> => {
    const r = await ps(SCRIPTS.list);
    if (r.code !== 0) throw commandFailed(`listing ${WINDOWS_STORE}`, r);
    const found: StoreEntry[] = [];
    for (const line of r.stdout.split(/\r?\n/)) {
      const b64 = line.trim().split(' ')[1];
      if (!b64) continue;
      try {
        const der = Buffer.from(b64, 'base64');
        if (deviceIdOf(parseCertificate(der)) === deviceId) found.push(entryOf(der, entryLabel(deviceId)));
      } catch {
        // not a certificate our parser takes: not ours
      }
    }
    return found;
  };

  const removeEntries = async (entries: StoreEntry[]): Promise<number> => {
    if (entries.length === 0) return 0;
    const r = await ps(SCRIPTS.remove(entries.map((e) => e.sha1)));
    if (r.code !== 0) throw commandFailed(`removing old certificates from ${WINDOWS_STORE}`, r);
    return entries.length;
  };

  return {
    kind: 'windows',
    location: WINDOWS_STORE,

    async install(c: BrowserCredential): Promise<StoreEntry> {
      const label = entryLabel(checkDeviceId(c.deviceId));
      if (c.key.kind === 'token') throw new BrowserStoreError('UNSUPPORTED', TOKEN_UNSUPPORTED_WINDOWS);
      const der = parseCertificate(c.certPem).der;
      const entry = entryOf(der, label);
      const pem = c.key.pem;
      await withPrivateDir(async (dir) => {
        const { bundle, password } = await writeDeviceBundle(dir, { der, keyPem: pem, friendlyName: label, profile: 'aes256-sha256' });
        const r = await ps(SCRIPTS.import(bundle, label), `${password}\n`);
        if (r.code !== 0) throw commandFailed('Import-PfxCertificate', r, [password]);
        if (!r.stdout.toUpperCase().includes(entry.sha1)) throw new BrowserStoreError('COMMAND_FAILED', `Import-PfxCertificate did not report the device certificate ${entry.sha1}: ${r.stdout.trim().slice(-300)}`);
      }, o.tmp);
      const now = await ours(c.deviceId);
      if (!now.some((e) => e.sha1 === entry.sha1)) throw new BrowserStoreError('COMMAND_FAILED', `${WINDOWS_STORE} does not hold the device certificate ${entry.sha1} after the import`);
      await removeEntries(now.filter((e) => e.sha1 !== entry.sha1));
      return entry;
    },

    async remove(deviceId: string): Promise<number> {
      return removeEntries(await ours(checkDeviceId(deviceId)));
    },

    async status(deviceId: string): Promise<CertStoreStatus> {
      return { location: WINDOWS_STORE, available: true, entries: await ours(checkDeviceId(deviceId)) };
    },
  };
}
