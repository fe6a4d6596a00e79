/**
 * /tokens: enrollment tokens. Create shows the secret once, with a copy
 * button and the exact `latchkey enroll` command; the list shows uses and
 * expiry; live tokens can be revoked.
 */
import type { ConsoleSession, GroupPage, TokenCreateResponse, TokenInfo, TokenPage } from '@latchkey/protocol';
import { ADMIN, api } from '../api.js';
import { append, h, replace } from '../dom.js';
import { relative, when } from '../format.js';
import { onLive } from '../live.js';
import { can, type Page } from '../page.js';
import { act, badge, confirmDialog, copyField, field, fill, loading, pageHeading, section, select, table, toast } from '../ui.js';

/** The command a person pastes on the device (the secret is the only part that changes). */
export function enrollCommand(session: Pick<ConsoleSession, 'serverUrl' | 'caFingerprint'>, secret: string): string {
  return `latchkey enroll --server ${session.serverUrl} --ca-fingerprint ${session.caFingerprint} --token ${secret}`;
}

function state(t: TokenInfo, now = Date.now()): 'revoked' | 'used' | 'expired' | 'active' {
  if (t.revokedAt) return 'revoked';
  if (t.usedCount >= t.uses) return 'used';
  if (new Date(t.expiresAt).getTime() <= now) return 'expired';
  return 'active';
}

export const tokensPage: Page = async (ctx) => {
  const operator = can(ctx.session.role, 'operator');
  const created = h('div');
  const list = h('div', null, loading());
  append(ctx.root, [pageHeading('Enrollment tokens'), operator ? createForm(ctx.session, created, () => load()) : null, created, section('Tokens', list)]);

  const load = (): Promise<void> =>
    fill(list, async () => {
      const page = await api.get<TokenPage>(`${ADMIN}/tokens`);
      const items = page.items.slice().sort((a, b) => b.createdAt.localeCompare(a.createdAt));
      return table('Enrollment tokens, newest first', [
        { label: 'Id', cell: (t) => h('code', null, t.id) },
        { label: 'Group', cell: (t) => t.group },
        { label: 'Uses', cell: (t) => `${t.usedCount} / ${t.uses}` },
        { label: 'Expires', cell: (t) => h('time', { datetime: t.expiresAt, title: when(t.expiresAt) }, relative(t.expiresAt)) },
        { label: 'Created', cell: (t) => when(t.createdAt) },
        { label: 'Status', cell: (t) => badge(state(t), state(t) === 'used' || state(t) === 'expired' ? 'neutral' : state(t)) },
        ...(operator ? [{ label: 'Actions', cell: (t: TokenInfo) => (state(t) === 'active' ? revokeButton(t, load) : null) }] : []),
      ], items, undefined, 'No enrollment token yet.');
    });
  ctx.onDispose(onLive(['audit', 'issuance'], () => void load(), 1000));
  await load();
};

function revokeButton(t: TokenInfo, reload: () => Promise<void>): HTMLElement {
  const b = h('button', { type: 'button', class: 'btn btn-danger', 'aria-label': `Revoke token ${t.id}` }, 'Revoke');
  b.addEventListener('click', () => {
    void confirmDialog({ title: `Revoke enrollment token ${t.id}?`, body: h('p', null, 'Devices can no longer enroll with it. Devices that already enrolled keep their certificates.'), confirm: 'Revoke', danger: true }).then(
      (ok) => ok && act(b, async () => {
        await api.del(`${ADMIN}/tokens/${encodeURIComponent(t.id)}`);
        toast(`Token ${t.id} revoked`);
        await reload();
      }),
    );
  });
  return b;
}

function createForm(session: ConsoleSession, out: HTMLElement, reload: () => Promise<void>): HTMLElement {
  const uses = h('input', { name: 'uses', type: 'number', min: '1', max: '100000', value: '1', required: true, inputmode: 'numeric' });
  const ttl = select('ttl', [['1h', '1 hour'], ['24h', '24 hours'], ['7d', '7 days'], ['30d', '30 days']], '24h');
  const group = select('group', [['default', 'default']], 'default');
  void api.get<GroupPage>(`${ADMIN}/groups`).then(
    (p) => {
      if (p.items.length) replace(group, p.items.map((g) => h('option', { value: g.name, selected: g.name === 'default' }, g.name)));
    },
    () => undefined,
  );
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create token');
  const form = h(
    'form',
    { class: 'panel inline-form', 'aria-labelledby': 'tok-create' },
    h('h2', { id: 'tok-create' }, 'New enrollment token'),
    h('div', { class: 'fields' }, field('Uses', uses), field('Valid for', ttl), field('Group', group)),
    h('div', { class: 'actions' }, submit),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(submit, async () => {
      const r = await api.post<TokenCreateResponse>(`${ADMIN}/tokens`, { uses: Number(uses.value), ttl: ttl.value, group: group.value });
      replace(
        out,
        h(
          'section',
          { class: 'panel secret', 'aria-labelledby': 'tok-secret' },
          h('h2', { id: 'tok-secret' }, 'Token created'),
          h('p', null, `Shown once: the server keeps only its hash. ${r.info.uses} use${r.info.uses === 1 ? '' : 's'}, group ${r.info.group}, valid until ${when(r.info.expiresAt)}.`),
          copyField('Token', r.token),
          copyField('Enroll command', enrollCommand(session, r.token)),
        ),
      );
      toast('Enrollment token created');
      await reload();
    });
  });
  return form;
}
