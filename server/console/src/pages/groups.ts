/** /groups: each token group's certificate lifetime, whether its devices need approval and TPM attestation; admins edit them. */
import type { GroupPage, GroupPolicy } from '@latchkey/protocol';
import { ADMIN, api } from '../api.js';
import { append, h } from '../dom.js';
import { duration } from '../format.js';
import { onLive } from '../live.js';
import { can, type Page } from '../page.js';
import { act, badge, field, fill, loading, pageHeading, section, select, table, toast } from '../ui.js';

export const groupsPage: Page = async (ctx) => {
  const admin = can(ctx.session.role, 'admin');
  const list = h('div', null, loading());
  const form = admin ? policyForm(() => load()) : null;
  append(ctx.root, [pageHeading('Groups and policy'), section('Groups', list), form?.el ?? null]);

  const load = (): Promise<void> =>
    fill(list, async () => {
      const page = await api.get<GroupPage>(`${ADMIN}/groups`);
      return table('Groups', [
        { label: 'Group', cell: (g) => g.name },
        { label: 'Certificate lifetime', cell: (g) => `${duration(g.certLifetimeSeconds)} (${g.certLifetimeSeconds} s)` },
        { label: 'Approval', cell: (g) => (g.requireApproval ? badge('required', 'pending') : 'not required') },
        { label: 'Attestation', cell: attestationCell },
        ...(form ? [{ label: 'Actions', cell: (g: GroupPolicy) => editButton(g, form.edit) }] : []),
      ], page.items, undefined, 'No group yet.');
    });
  ctx.onDispose(onLive(['policy'], () => void load(), 500));
  await load();
};

/** A group's attestation policy (issue 14): none, or TPM required (and whether the EK must be registered first). */
function attestationCell(g: GroupPolicy): HTMLElement | string {
  if (g.attestation !== 'tpm') return 'none';
  return h('span', null, badge('TPM required', 'attested'), g.requireRegisteredEk ? ', registered EK required' : ', any trusted TPM');
}

function editButton(g: GroupPolicy, edit: (g: GroupPolicy) => void): HTMLElement {
  const b = h('button', { type: 'button', class: 'btn', 'aria-label': `Edit ${g.name}` }, 'Edit');
  b.addEventListener('click', () => edit(g));
  return b;
}

function policyForm(reload: () => Promise<void>): { el: HTMLElement; edit: (g: GroupPolicy) => void } {
  const name = h('input', { name: 'name', type: 'text', required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,62}', maxlength: '63', autocomplete: 'off' });
  const lifetime = h('input', { name: 'certLifetimeSeconds', type: 'number', min: '5', max: String(366 * 86400), required: true, inputmode: 'numeric' });
  const approval = h('input', { name: 'requireApproval', type: 'checkbox', id: 'grp-approval' });
  const attestation = select('attestation', [['none', 'None: any key the CSR policy allows'], ['tpm', 'TPM: only a TPM-attested device key']], 'none');
  const registeredEk = h('input', { name: 'requireRegisteredEk', type: 'checkbox', id: 'grp-registered-ek' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save policy');
  const el = h(
    'form',
    { class: 'panel inline-form', 'aria-labelledby': 'grp-form' },
    h('h2', { id: 'grp-form' }, 'Set a group policy'),
    h('p', { class: 'hint' }, 'A new name creates the group. Agents of the group get the new policy at once.'),
    h('div', { class: 'fields' }, field('Group name', name, 'lower-case letters, digits, - and _'), field('Certificate lifetime (seconds)', lifetime, '86400 is one day'), field('Attestation', attestation, 'TPM: enrollments and renewals must prove the key is in the device\'s TPM')),
    h('div', { class: 'check' }, approval, h('label', { for: 'grp-approval' }, 'New devices need approval')),
    h('div', { class: 'check' }, registeredEk, h('label', { for: 'grp-registered-ek' }, 'With TPM attestation: the device\'s EK must be registered first')),
    h('div', { class: 'actions' }, submit),
  );
  el.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(submit, async () => {
      await api.put(`${ADMIN}/groups/${encodeURIComponent(name.value)}`, { certLifetimeSeconds: Number(lifetime.value), requireApproval: approval.checked, attestation: attestation.value === 'tpm' ? 'tpm' : 'none', requireRegisteredEk: registeredEk.checked });
      toast(`Policy of ${name.value} saved`);
      await reload();
    });
  });
  const edit = (g: GroupPolicy): void => {
    name.value = g.name;
    lifetime.value = String(g.certLifetimeSeconds);
    approval.checked = g.requireApproval;
    attestation.value = g.attestation;
    registeredEk.checked = g.requireRegisteredEk;
    el.scrollIntoView({ block: 'nearest' });
    lifetime.focus();
  };
  return { el, edit };
}
