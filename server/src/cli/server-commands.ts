/**
 * The table of latchkey-server's commands: what each is called, takes,
 * shows as an example, and does (setup-, admin- and gateway-commands.ts).
 * init, start and the gateway commands import their modules where used:
 * admin commands stay quick to start (they load the admin client only, not
 * fastify, the database drivers and the CA).
 */
import { Option, type ProgramSpec } from '@latchkey/cli';
import { auditList, deviceCommands, groupCommands, tokenCommands } from './admin-commands.js';
import { adminTokenCommands } from './admin-token-commands.js';
import type { ServerCliCtx } from './cli-context.js';
import { gatewayCommands } from './gateway-commands.js';
import { loginCommands } from './login-commands.js';
import { registeredDeviceCommands } from './registered-devices-commands.js';
import { init, start } from './setup-commands.js';
import { usersCommands } from './users-commands.js';

export type { ServerCliCtx } from './cli-context.js';

export const SERVER_CLI: ProgramSpec<ServerCliCtx> = {
  name: 'latchkey-server',
  summary: 'enrollment server and issuing CA for device mTLS',
  globals: [new Option('--debug', 'on failure, print the stack trace too')],
  groups: {
    token: 'enrollment tokens: create, list, revoke',
    groups: 'device groups and their policy (certificate lifetime, approval)',
    devices: 'the device inventory: list, show, approve, deny, revoke, renew-now, online',
    audit: 'the audit log',
    users: 'people from the identity provider: list, sync',
    'admin-token': 'admin API tokens for automation, and sessions: create, list, revoke',
    gateway: 'mTLS gateways: config, tokens, CRL sync',
    'gateway token': 'tokens for `gateway sync`',
  },
  commands: [init, start, ...loginCommands, ...tokenCommands, ...groupCommands, ...deviceCommands, ...registeredDeviceCommands, auditList, ...usersCommands, ...adminTokenCommands, ...gatewayCommands],
  epilog: `Admin commands reach the running server with --server URL [--ca-file F]
as the person signed in with \`latchkey-server login --server URL\`, or with
LATCHKEY_ADMIN_TOKEN; on the server host, --data-dir D gives URL, CA and
the bootstrap admin token.
Environment: LATCHKEY_CA_PASSPHRASE, LATCHKEY_DATABASE_URL, LATCHKEY_LISTEN,
LATCHKEY_ADMIN_TOKEN, LATCHKEY_SERVER, LATCHKEY_GATEWAY_TOKEN.
Exit codes: 0 ok, 1 failure, 2 usage or configuration error.
Every command takes --help, e.g. latchkey-server devices revoke --help.`,
};
