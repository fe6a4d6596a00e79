/** /admins (admin role): admin API tokens and people's live sessions; create a token (secret shown once), revoke either. */
import type { AdminRole, AdminTokenCreateResponse, AdminTokenInfo } from '@latchkey/protocol';
import { ADMIN_ROLES } from '@latchkey/protocol/wire';
import { ADMIN, api } from '../api.js';
import { h, replace } from '../dom.js';
import { relative, when } from '../format.js';
import { onLive } from '../live.js';
import { can, type Page } from '../page.js';
import { act, badge, confirmDialog, copyField, field, fill, loading, pageHeading, section, select, table, toast } from '../ui.js';

export const adminsPage: Page = async (ctx) => {
  ctx.root.append(pageHeading('Admins'));
  if (!can(ctx.session.role, 'admin')) {
    ctx.root.append(h('p', { class: 'error-panel', role: 'alert' }, 'Admin tokens and sessions are for the admin role; ask an admin.'));
    return;
  }
  const created = h('div');
  const tokens = h('div', null, loading());
  const sessions = h('div', null, loading());
  ctx.root.append(createForm(ctx.session.role, created, () => load()), created, section('Admin tokens', tokens), section('Sessions', sessions));

  const load = async (): Promise<void> => {
    let items: AdminTokenInfo[] = [];
    const get = api.get<{ items: AdminTokenInfo[] }>(`${ADMIN}/admin-tokens`, { sessions: true }).then((p) => (items = p.items));
    await Promise.all([
      fill(tokens, async () => {
        await get;
        return table('Admin tokens', [
          { label: 'Name', cell: (t) => t.name },
          { label: 'Kind', cell: (t) => t.kind },
          { label: 'Role', cell: (t) => t.role },
          { label: 'Created', cell: (t) => `${when(t.createdAt)}${t.createdBy ? ` by ${t.createdBy}` : ''}` },
          { label: 'Expires', cell: (t) => relative(t.expiresAt) },
          { label: 'Last used', cell: (t) => relative(t.lastUsedAt) },
          { label: 'Status', cell: (t) => (t.revokedAt ? badge('revoked') : badge('active')) },
          { label: 'Actions', cell: (t) => (t.revokedAt ? null : revokeButton(t, `Revoke admin token ${t.name}?`, load)) },
        ], items.filter((t) => t.kind !== 'session'), undefined, 'No admin token.');
      }),
      fill(sessions, async () => {
        await get;
        return table('Live sessions', [
          { label: 'Person', cell: (t) => t.user ?? t.name },
          { label: 'Role', cell: (t) => t.role },
          { label: 'Signed in', cell: (t) => when(t.createdAt) },
          { label: 'Expires', cell: (t) => relative(t.expiresAt) },
          { label: 'Last used', cell: (t) => relative(t.lastUsedAt) },
          { label: 'Actions', cell: (t) => (t.revokedAt ? null : revokeButton(t, `End the session of ${t.user ?? t.name}?`, load, 'End session')) },
        ], items.filter((t) => t.kind === 'session' && !t.revokedAt), undefined, 'No live session.');
      }),
    ]);
  };
  ctx.onDispose(onLive(['audit'], () => void load(), 1000));
  await load();
};

function revokeButton(t: AdminTokenInfo, title: string, reload: () => Promise<void>, text = 'Revoke'): HTMLElement {
  const b = h('button', { type: 'button', class: 'btn btn-danger', 'aria-label': `${text} ${t.user ?? t.name}` }, text);
  b.addEventListener('click', () => {
    void confirmDialog({ title, body: h('p', null, 'It stops working at once.'), confirm: text, danger: true }).then(
      (ok) => ok && act(b, async () => {
        await api.del(`${ADMIN}/admin-tokens/${encodeURIComponent(t.id)}`);
        toast(`${t.user ?? t.name}: ${text === 'Revoke' ? 'revoked' : 'session ended'}`);
        await reload();
      }),
    );
  });
  return b;
}

function createForm(myRole: AdminRole, out: HTMLElement, reload: () => Promise<void>): HTMLElement {
  const name = h('input', { name: 'name', type: 'text', required: true, pattern: '[a-z0-9][a-z0-9_.\\-]{0,62}', maxlength: '63', autocomplete: 'off' });
  const role = select('role', ADMIN_ROLES.filter((r) => can(myRole, r)), 'viewer');
  const ttl = select('ttl', [['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days'], ['365d', '365 days']], '90d');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create token');
  const form = h(
    'form',
    { class: 'panel inline-form', 'aria-labelledby': 'adm-create' },
    h('h2', { id: 'adm-create' }, 'New admin token'),
    h('div', { class: 'fields' }, field('Token name', name, 'lower-case letters, digits, . - _'), field('Role', role), field('Valid for', ttl)),
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(submit, async () => {
      const r = await api.post<AdminTokenCreateResponse>(`${ADMIN}/admin-tokens`, { name: name.value.trim(), role: role.value, ttl: ttl.value });
      replace(out, h('section', { class: 'panel secret', 'aria-labelledby': 'adm-secret' }, h('h2', { id: 'adm-secret' }, `Token ${r.info.name} (${r.info.role})`), h('p', null, 'Shown once: the server keeps only its hash.'), copyField('Token', r.token)));
      form.reset();
      await reload();
    });
  });
  return form;
}
