/**
 * `latchkey browser enable|disable|status`: the CLI side of browser.ts (its
 * options are parsed by the command table in cli/agent-commands.ts).
 * Exit 0 ok, 1 the store could not be changed.
 */
import { existsSync } from 'node:fs';
import { AgentError } from '../errors.js';
import { acquireStateLock } from '../state/lock.js';
import { type EnableOptions, browserStatus, disableBrowser, enableBrowser } from './browser.js';
import { BrowserStoreError } from './cert-store.js';

export type BrowserSub = 'enable' | 'disable' | 'status';

export async function browserCommand(sub: BrowserSub, v: { json?: boolean } & EnableOptions, stateDir: string, env: NodeJS.ProcessEnv, out: NodeJS.WritableStream = process.stdout): Promise<number> {
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
          ...s.firefox.map((f) => `Firefox profile ${f.profile}: ${f.entries.length ? f.entries.map((e) => `serial ${e.serialHex}`).join('; ') : 'nothing of this device'}${s.enabled && s.serial ? (f.current ? ' (current)' : ' (NOT the current certificate)') : ''}`),
          ...(s.firefoxPolicy ? [`Firefox policy: ${s.firefoxPolicy}`] : []),
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
        const { json: _json, ...opts } = v;
        const r = await enableBrowser(stateDir, deps, opts);
        const where = [r.location, ...r.firefox.map((p) => `Firefox profile ${p}`)].join(', ');
        out.write(`browser: certificate ${r.entry.serialHex} of device ${r.identity.deviceId} is in ${where} as "${r.entry.label}"; it is replaced at every renewal and removed on revocation or unenroll\n`);
        if (r.setting.firefoxPolicy) {
          out.write(`browser: Firefox selects it without asking (policy in ${r.setting.firefoxPolicy.file}; restart Firefox)\n`);
          for (const k of r.policyKept) out.write(`browser: note: ${r.setting.firefoxPolicy.file} already sets ${k} to another value; left as it is\n`);
        } else if (r.firefox.length) {
          out.write('browser: Firefox asks which certificate to send until its policy sets security.default_personal_cert to "Select Automatically": `latchkey browser enable --firefox-policy` merges it into policies.json (needs write access there), or deploy it with your device management\n');
        }
        return 0;
      }
      const r = await disableBrowser(stateDir, deps);
      const from = r ? [r.location, ...r.firefox.map((p) => `Firefox profile ${p}`)].join(', ') : '';
      out.write(r ? `browser: disabled; ${r.removed} entr${r.removed === 1 ? 'y' : 'ies'} of this device removed from ${from}\n` : 'browser: was not enabled; nothing to do\n');
      if (r?.policy) out.write(`browser: ${r.policy.removed} Firefox polic${r.policy.removed === 1 ? 'y' : 'ies'} latchkey had set removed from ${r.policy.file}\n`);
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
