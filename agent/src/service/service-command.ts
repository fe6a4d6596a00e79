/**
 * `latchkey service install|uninstall [--user]`: the CLI side of
 * service-install.ts (options parsed by the table in cli/agent-commands.ts). The service runs this very program: the packaged
 * binary, or node with this script in a development checkout.
 */
import { readIdentity } from '../state/identity.js';
import { selfArgv } from '../util/self-argv.js';
import { installService, nodeServiceDeps, uninstallService } from './service-install.js';
import { ServiceError, type ServiceSpec } from './service-types.js';

export async function installServiceCommand(sub: 'install' | 'uninstall', v: { user?: boolean }, stateDir: string): Promise<number> {
  const scope = v.user ? 'user' : 'system';
  try {
    if (sub === 'uninstall') {
      const r = await uninstallService({ scope, command: selfArgv() }, nodeServiceDeps());
      process.stdout.write(`removed the ${scope} service${r.path ? ` (${r.path})` : ''}\n`);
      return 0;
    }
    const id = await readIdentity(stateDir);
    if (!id) process.stderr.write(`note: ${stateDir} holds no identity yet; the service will wait for \`latchkey enroll\`… and exit 1 until then\n`);
    const spec: ServiceSpec = { command: selfArgv(), stateDir, scope };
    const r = await installService(spec, nodeServiceDeps());
    process.stdout.write(`installed the ${scope} service${r.path ? ` at ${r.path}` : ''}: ${r.commands.map((c) => [c.cmd, ...c.args].join(' ')).join('; ')}\n`);
    return 0;
  } catch (e) {
    if (e instanceof ServiceError) {
      process.stderr.write(`latchkey: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
