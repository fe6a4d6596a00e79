/**
 * /audit: the audit log, newest first, filtered by actor, action, device and
 * time (all in the URL), paged with "Older" (the `before` cursor). The first
 * page follows new rows live.
 */
import type { AuditPage } from '@latchkey/protocol';
import { ADMIN, api, withQuery } from '../api.js';
import { auditTable } from '../audit-table.js';
import { h, replace } from '../dom.js';
import { isoFromLocal } from '../format.js';
import { onLive } from '../live.js';
import type { Page } from '../page.js';
import { errorPanel, field, loading, pageHeading } from '../ui.js';

const PAGE_SIZE = 100;

/** An ISO timestamp as a `datetime-local` value in local time. */
function localOf(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export const auditPage: Page = async (ctx) => {
  const q = ctx.query;
  const text = (name: string, placeholder: string) => h('input', { name, type: 'text', value: q.get(name) ?? '', placeholder, autocomplete: 'off', maxlength: '200' });
  const actor = text('actor', 'user:ann@example.com');
  const action = text('action', 'device.revoke');
  const target = text('target', 'device id');
  const since = h('input', { name: 'since', type: 'datetime-local', value: localOf(q.get('since')) });
  const until = h('input', { name: 'until', type: 'datetime-local', value: localOf(q.get('until')) });
  const filters = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Audit log' },
    field('Actor', actor),
    field('Action', action),
    field('Device', target),
    field('Since', since),
    field('Until', until),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Filter')),
  );
  const results = h('div', null, loading());
  ctx.root.append(pageHeading('Audit log'), filters, results);

  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ctx.navigate(withQuery('/audit', { actor: actor.value.trim(), action: action.value.trim(), target: target.value.trim(), since: isoFromLocal(since.value), until: isoFromLocal(until.value) }));
  });

  const load = async (): Promise<void> => {
    try {
      const page = await api.get<AuditPage>(`${ADMIN}/audit`, { actor: q.get('actor'), action: q.get('action'), target: q.get('target'), since: q.get('since'), until: q.get('until'), before: q.get('before'), limit: PAGE_SIZE });
      const older = page.nextCursor ? h('a', { class: 'btn', href: withQuery('/audit', { ...Object.fromEntries(q), before: page.nextCursor }) }, 'Older') : null;
      const newest = q.get('before') ? h('a', { class: 'btn', href: withQuery('/audit', { ...Object.fromEntries(q), before: undefined }) }, 'Newest') : null;
      replace(results, auditTable(page.items), h('nav', { class: 'pager', 'aria-label': 'Pages' }, newest, older));
    } catch (err) {
      replace(results, errorPanel(err));
    }
  };
  if (!q.get('before')) ctx.onDispose(onLive(['audit'], () => void load(), 1000));
  await load();
};
