/**
 * Refreshing an admin session asks the identity provider again: the person's
 * refresh token there (users sync's `recheck`), then their role from the
 * groups it returns now. A person the IdP disabled loses the session (and
 * their devices, as in a sync); one whose groups no longer give a role loses
 * the session. An IdP that cannot be asked leaves the role of the last check:
 * an outage does not lock every admin out, and the refresh window
 * (`refreshSeconds`) bounds how long that lasts without a sign-in.
 */
import type { AdminRole } from '@latchkey/protocol';
import type { Reauthorize } from '../admin/admin-sessions.js';
import type { ServerConfig } from '../config/config-schema.js';
import { LatchkeyError } from '../errors.js';
import type { UsersRepo } from '../users/users-repo.js';
import type { UsersSync } from '../users/users-sync.js';
import { adminRefusal } from './sign-in-fns.js';

export function idpReauthorize(d: { oidc: NonNullable<ServerConfig['oidc']>; users: Pick<UsersRepo, 'findById'>; sync: () => Pick<UsersSync, 'recheck'> }): Reauthorize {
  return async (userId: string): Promise<AdminRole> => {
    const checked = await d.sync().recheck(userId);
    const u = await d.users.findById(userId);
    if (!u || checked.status === 'disabled') {
      throw new LatchkeyError('SESSION_EXPIRED', 'the identity provider no longer knows you or has disabled you; your session has ended');
    }
    const decided = adminRefusal({ issuer: u.issuer, subject: u.subject, email: u.email, groups: checked.groups }, d.oidc);
    if ('refusal' in decided) throw new LatchkeyError('SESSION_EXPIRED', `your session has ended: ${decided.refusal}`);
    return decided.role;
  };
}
