import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adminRefusal, enrollRefusal, PLAIN_EMAIL } from './sign-in-fns.js';

const oidc = {
  allowedEmailDomains: ['example.com'],
  enrollGroups: ['staff', 'contractors'],
  groupMapping: [
    { idpGroup: 'contractors', group: 'short-lived' },
    { idpGroup: 'staff', group: 'staff-laptops' },
  ],
  adminGroups: { viewer: ['helpdesk'], operator: ['it-ops'], admin: ['it-admins'] },
};
const id = (email: string, groups: string[], extra = {}) => ({ issuer: 'https://idp.example.com', subject: 's', email, groups, ...extra });

test('enrollment: the first mapping whose IdP group the person is in decides the group; no match is `default`', () => {
  assert.deepEqual(enrollRefusal(id('a@example.com', ['staff', 'contractors']), oidc), { group: 'short-lived' });
  assert.deepEqual(enrollRefusal(id('a@example.com', ['staff']), oidc), { group: 'staff-laptops' });
  assert.deepEqual(enrollRefusal(id('a@example.com', ['staff']), { ...oidc, groupMapping: [] }), { group: 'default' });
});

test('enrollment refusals name the rule: domain (case-insensitive, no subdomains), groups, groups left out of the token', () => {
  assert.match((enrollRefusal(id('a@evil.com', ['staff']), oidc) as { refusal: string }).refusal, /not in an email domain this server accepts \(example\.com\)/);
  assert.match((enrollRefusal(id('a@sub.example.com', ['staff']), oidc) as { refusal: string }).refusal, /email domain/);
  assert.match((enrollRefusal(id('a@example.com.evil.com', ['staff']), oidc) as { refusal: string }).refusal, /email domain/);
  assert.deepEqual(enrollRefusal(id('a@any.org', []), { ...oidc, allowedEmailDomains: [], enrollGroups: [], groupMapping: [] }), { group: 'default' });
  assert.deepEqual(enrollRefusal(id('A@EXAMPLE.COM', ['staff']), oidc), { group: 'staff-laptops' });
  assert.match((enrollRefusal(id('a@example.com', ['sales']), oidc) as { refusal: string }).refusal, /in none of the identity provider groups that may enroll devices \(staff, contractors\)/);
  assert.match((enrollRefusal(id('a@example.com', [], { groupsUnknown: true }), oidc) as { refusal: string }).refusal, /left the groups out of the token/);
});

test('administration: the highest role of the person\'s groups; none is refused with the mapping; overage refused', () => {
  assert.deepEqual(adminRefusal(id('a@example.com', ['helpdesk', 'it-admins']), oidc), { role: 'admin' });
  assert.deepEqual(adminRefusal(id('a@example.com', ['helpdesk']), oidc), { role: 'viewer' });
  assert.deepEqual(adminRefusal(id('a@example.com', ['x', 'it-ops', 'helpdesk']), oidc), { role: 'operator' });
  assert.match((adminRefusal(id('a@example.com', ['staff']), oidc) as { refusal: string }).refusal, /viewer: helpdesk; operator: it-ops; admin: it-admins/);
  assert.match((adminRefusal(id('a@other.org', ['it-admins']), oidc) as { refusal: string }).refusal, /email domain/);
  assert.ok('refusal' in adminRefusal(id('a@example.com', [], { groupsUnknown: true }), oidc));
});

test('only plain emails reach a certificate: no DN or header specials, no plus, no spaces', () => {
  for (const ok of ['alice@example.com', 'a.b_c-d%e@mail.example.co']) assert.match(ok, PLAIN_EMAIL);
  for (const bad of ['alice+x@example.com', 'a,b@example.com', 'a b@example.com', 'a"b@example.com', 'a@b@example.com', 'a=b@example.com', '@example.com']) assert.doesNotMatch(bad, PLAIN_EMAIL);
});
