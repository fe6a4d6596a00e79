/**
 * `latchkey browser enable|disable|status`: the CLI side of browser.ts (its
 * options are parsed by the command table in cli/agent-commands.ts).
 * Exit 0 ok, 1 the store could not be changed.
 */
import { existsSync } from 'node:fs';
import { AgentError } from '../errors.js';
import { acquireStateLock } from '../state/lock.js';
import { browserStatus, disableBrowser, enableBrowser } from './browser.js';
import { BrowserStoreError } from './cert-store.js';

export type BrowserSub = 'enable' | 'disable' | 'status';

export async function browserCommand(sub: BrowserSub, v: { json?: boolean; nssDb?: string }, stateDir: string, env: NodeJS.ProcessEnv, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const deps = { platform: process.platform, env };
  try {
    if (sub === 'status') {
      const s = await browserStatus(stateDir, deps);
      if (v.json) {
        out.write(`${JSON.stringify(s, null, 2)}\n`);
      } else {
        const lines = [
          `browser certificate store: ${s.enabled ? 'enabled' : 'disabled'}${s.location ? ` (${s.store}: ${s.location})` : ''}`,
          ...(s.deviceId ? [`device: ${s.deviceId}${s.serial ? `, certificate ${s.serial}` : ''}`] : []),
          `in the store: ${s.entries.length ? s.entries.map((e) => `"${e.label}" serial ${e.serialHex}`).join('; ') : 'nothing of this device'}${s.enabled && s.serial ? (s.current ? ' (current)' : ' (NOT the current certificate)') : ''}`,
          ...(s.tokenModule ? [`token module: ${s.tokenModule}`] : []),
          ...(s.lastError ? [`last error (${s.lastError.at}): ${s.lastError.message}`] : []),
        ];
        out.write(`${lines.join('\n')}\n`);
      }
      return 0;
    }
    if (!existsSync(stateDir)) throw new AgentError('NOT_ENROLLED', `this device is not enrolled (no state in ${stateDir})`);
    const release = await acquireStateLock(stateDir);
    try {
      if (sub === 'enable') {
        const r = await enableBrowser(stateDir, deps, v.nssDb ? { nssDb: v.nssDb } : {});
        out.write(`browser: certificate ${r.entry.serialHex} of device ${r.identity.deviceId} is in ${r.location} as "${r.entry.label}"; it is replaced at every renewal and removed on revocation or unenroll\n`);
        return 0;
      }
      const r = await disableBrowser(stateDir, deps);
      out.write(r ? `browser: disabled; ${r.removed} entr${r.removed === 1 ? 'y' : 'ies'} of this device removed from ${r.location}\n` : 'browser: was not enabled; nothing to do\n');
      return 0;
    } finally {
      await release();
    }
  } catch (e) {
    if (e instanceof BrowserStoreError) {
      process.stderr.write(`latchkey: browser ${sub}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
