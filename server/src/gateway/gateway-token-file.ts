/** `gateway sync --token-file F`: the gateway token from a file, so it is not on the command line (`ps`). */
import { cleanSecret, readSecretFile } from '@latchkey/cli';
import { UsageError } from '../admin-client.js';

const GATEWAY_TOKEN = { what: 'the gateway token', makeWith: 'latchkey-server gateway token create' };
const usage = (m: string): Error => new UsageError(m);

/** The token in `file`, surrounding whitespace and CR/LF removed; refuses a file others may read or write. */
export function readGatewayTokenFile(file: string): string {
  return readSecretFile(file, { ...GATEWAY_TOKEN, flag: '--token-file' }, usage);
}

/** A gateway token given on the command line or in LATCHKEY_GATEWAY_TOKEN, cleaned the same way. */
export function cleanGatewayToken(raw: string, where: '--token' | 'LATCHKEY_GATEWAY_TOKEN'): string {
  return cleanSecret(raw, { ...GATEWAY_TOKEN, where }, usage);
}
