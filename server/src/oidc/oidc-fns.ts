/** Pure decisions on a verified identity: admin role and enrollment right. */
import type { AdminRole, EnrollPolicy, GroupRoleMapping } from './oidc-types.js';

const ROLES_HIGH_FIRST: readonly AdminRole[] = ['admin', 'operator', 'viewer'];

/** The highest role any of `groups` maps to, or undefined when none does. */
export function rolesFromGroups(groups: readonly string[], mapping: GroupRoleMapping): AdminRole | undefined {
  const mine = new Set(groups);
  return ROLES_HIGH_FIRST.find((role) => mapping[role].some((g) => mine.has(g)));
}

/**
 * Whether this person may enroll devices: the email's domain is allowed (an
 * empty list allows any domain) and they are in one of the enroll groups (an
 * empty list allows any group). Domains compare case-insensitively and exactly
 * (a subdomain is not the domain).
 */
export function mayEnroll(email: string, groups: readonly string[], cfg: EnrollPolicy): boolean {
  const at = email.lastIndexOf('@');
  if (at <= 0 || at === email.length - 1) return false;
  const domain = email.slice(at + 1).toLowerCase();
  const domainOk = cfg.allowedEmailDomains.length === 0 || cfg.allowedEmailDomains.some((d) => d.toLowerCase() === domain);
  const groupOk = cfg.enrollGroups.length === 0 || cfg.enrollGroups.some((g) => groups.includes(g));
  return domainOk && groupOk;
}
