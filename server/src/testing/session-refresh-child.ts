/**
 * A separate process that asks for the admin token of a stored session
 * (cli/admin-session.ts), as a `latchkey-server` command would, for the
 * two-process refresh test. Its "server" keeps refresh tokens one-use the
 * way /v1/auth/refresh does, across processes: spending a refresh token
 * creates `<spent>/<token>` with O_EXCL, so a second use of the same token
 * fails as a replay (SESSION_EXPIRED, the server's answer to reuse).
 *
 *   node session-refresh-child.js DIR ORIGIN SPENT_DIR GO_FILE
 *
 * Waits until GO_FILE exists (all children start together), prints the token.
 */
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AdminSession } from '@latchkey/protocol';
import { ApiError } from '../cli-errors.js';
import { sessionToken } from '../cli/admin-session.js';
import { sessionStore } from '../cli/session-store.js';

const [dir, origin, spent, go] = process.argv.slice(2) as [string, string, string, string];

async function refresh(refreshToken: string): Promise<AdminSession> {
  await sleep(200); // a refresh takes a while: the other process has time to race
  try {
    await (await open(join(spent, refreshToken), 'wx')).close();
  } catch {
    throw new ApiError(401, 'SESSION_EXPIRED', 'refresh token used twice: every session of the person ended');
  }
  const n = `${process.pid}x${Date.now()}`.padEnd(24, '0');
  return { token: `lk_ses_${n}`, refreshToken: `lk_ref_${n}`, expiresAt: new Date(Date.now() + 3600_000).toISOString(), refreshExpiresAt: new Date(Date.now() + 43_200_000).toISOString(), role: 'admin' };
}

while (!existsSync(go)) await sleep(5);
try {
  const token = await sessionToken({ store: sessionStore(dir), origin, clock: () => new Date(), refresh });
  process.stdout.write(`${token}\n`);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
}
