/** Pure decisions of a sign-in: may this person administer (and as what), may they enroll (and into which group). */
import { USER_EMAIL_PATTERN } from '@latchkey/pki';
import type { AdminRole } from '@latchkey/protocol';
import type { ServerConfig } from '../config/config-schema.js';
import type { VerifiedIdentity } from '../oidc/oidc-types.js';

type OidcSettings = Pick<NonNullable<ServerConfig['oidc']>, 'allowedEmailDomains' | 'enrollGroups' | 'adminGroups' | 'groupMapping'>;

/**
 * An email that may go into a certificate's SAN and subject and a gateway's
 * header as it is (the profile's own rule; the server lower-cases first).
 */
export const PLAIN_EMAIL = new RegExp(`^${USER_EMAIL_PATTERN}$`);

const DEFAULT_GROUP = 'default';
const ROLES_HIGH_FIRST: readonly AdminRole[] = ['admin', 'operator', 'viewer'];

/** The highest role any of `groups` maps to, or undefined when none does. */
function roleFromGroups(groups: readonly string[], mapping: OidcSettings['adminGroups']): AdminRole | undefined {
  return ROLES_HIGH_FIRST.find((role) => mapping[role].some((g) => groups.includes(g)));
}

/** Domains compare case-insensitively and exactly (a subdomain is not the domain); an empty list allows any. */
function domainRefusal(email: string, domains: readonly string[]): string | undefined {
  if (domains.length === 0) return undefined;
  const domain = email.slice(email.lastIndexOf('@') + 1).toLowerCase();
  if (domains.some((d) => d.toLowerCase() === domain)) return undefined;
  return `${email} is not in an email domain this server accepts (${domains.join(', ')})`;
}

const OVERAGE = 'the identity provider left the groups out of the token (the person is in too many groups); ask IT to limit the groups claim of this application to the groups Latchkey uses';

/** The Latchkey group of a person's devices, or why they may not enroll. */
export function enrollRefusal(id: VerifiedIdentity, oidc: OidcSettings): { group: string } | { refusal: string } {
  const email = id.email.toLowerCase();
  if (id.groupsUnknown) return { refusal: `${email}: ${OVERAGE}` };
  const domain = domainRefusal(email, oidc.allowedEmailDomains);
  if (domain) return { refusal: `${domain}; ask IT for an enrollment token instead` };
  // An empty list allows any group.
  if (oidc.enrollGroups.length > 0 && !oidc.enrollGroups.some((g) => id.groups.includes(g))) {
    return { refusal: `${email} is in none of the identity provider groups that may enroll devices (${oidc.enrollGroups.join(', ')}); ask IT to add you to one` };
  }
  const mapped = oidc.groupMapping.find((m) => id.groups.includes(m.idpGroup));
  return { group: mapped?.group ?? DEFAULT_GROUP };
}

/** The admin role of a person, or why they may not administer. */
export function adminRefusal(id: VerifiedIdentity, oidc: OidcSettings): { role: AdminRole } | { refusal: string } {
  const email = id.email.toLowerCase();
  if (id.groupsUnknown) return { refusal: `${email}: ${OVERAGE}` };
  const domain = domainRefusal(email, oidc.allowedEmailDomains);
  if (domain) return { refusal: domain };
  const role = roleFromGroups(id.groups, oidc.adminGroups);
  if (!role) {
    const g = oidc.adminGroups;
    return { refusal: `${email} is in none of the identity provider groups that administer Latchkey (viewer: ${g.viewer.join(', ') || '-'}; operator: ${g.operator.join(', ') || '-'}; admin: ${g.admin.join(', ') || '-'})` };
  }
  return { role };
}
