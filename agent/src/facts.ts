/**
 * Device facts reported at enrollment (packages/protocol DeviceFacts):
 * hostname, OS, architecture, and a stable hardware id — Linux
 * /etc/machine-id, macOS IOPlatformUUID, Windows MachineGuid.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import { promisify } from 'node:util';
import type { DeviceFacts, OsPlatform } from '@latchkey/protocol';
import { AGENT_VERSION } from './version.js';

const run = promisify(execFile);

export interface FactsDeps {
  platform: NodeJS.Platform;
  readFile: (path: string) => Promise<string>;
  exec: (cmd: string, args: string[]) => Promise<string>;
}

const realDeps: FactsDeps = {
  platform: process.platform,
  readFile: (p) => readFile(p, 'utf8'),
  exec: async (cmd, args) => (await run(cmd, args, { timeout: 10_000, windowsHide: true })).stdout,
};

/** The platform's stable hardware id, or undefined when it cannot be read. */
export async function hardwareId(deps: FactsDeps = realDeps): Promise<string | undefined> {
  try {
    if (deps.platform === 'linux') {
      for (const p of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
        const v = (await deps.readFile(p).catch(() => '')).trim();
        if (/^[0-9a-f]{32}$/i.test(v)) return v.toLowerCase();
      }
      return undefined;
    }
    if (deps.platform === 'darwin') {
      const out = await deps.exec('/usr/sbin/ioreg', ['-rd1', '-c', 'IOPlatformExpertDevice']);
      return /"IOPlatformUUID"\s*=\s*"([0-9A-Fa-f-]{36})"/.exec(out)?.[1]?.toUpperCase();
    }
    if (deps.platform === 'win32') {
      const out = await deps.exec('reg', ['query', 'HKLM\\SOFTWARE\\Microsoft\\Cryptography', '/v', 'MachineGuid']);
      return /MachineGuid\s+REG_SZ\s+([0-9A-Fa-f-]{36})/.exec(out)?.[1]?.toLowerCase();
    }
  } catch {
    return undefined;
  }
  return undefined;
}

const platformOf = (p: NodeJS.Platform): OsPlatform => (p === 'linux' || p === 'darwin' || p === 'win32' ? p : 'other');
const clip = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);

export async function collectFacts(deps: FactsDeps = realDeps): Promise<DeviceFacts> {
  const hw = await hardwareId(deps);
  let version: string | undefined;
  try {
    version = os.version();
  } catch {
    version = undefined;
  }
  return {
    hostname: clip(os.hostname() || 'unknown', 253),
    os: { platform: platformOf(deps.platform), release: clip(os.release(), 100), ...(version ? { version: clip(version, 200) } : {}) },
    arch: clip(process.arch, 32),
    // The id must be present: without a platform id, say so rather than invent a stable-looking one.
    hardwareId: hw ?? 'unavailable',
    agentVersion: AGENT_VERSION,
  };
}
