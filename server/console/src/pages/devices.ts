/**
 * /devices: server-side search, filters, sort and cursor paging, all kept in
 * the URL (?q=&status=&group=&online=&sort=&order=&cursor=) so a view can be
 * shared and Back works. "Previous" walks back the cursors this page visited.
 */
import type { Device, DevicePage, DeviceSort, GroupPage, SortOrder } from '@latchkey/protocol';
import { DEFAULT_DEVICE_ORDER, DEVICE_STATUSES } from '@latchkey/protocol/wire';
import { ADMIN, api, withQuery } from '../api.js';
import { h, replace, type Child } from '../dom.js';
import { relative, when } from '../format.js';
import { onLive } from '../live.js';
import type { Page } from '../page.js';
import { assuranceBadge, badge, errorPanel, field, link, loading, pageHeading, select, table, type Column } from '../ui.js';

const PAGE_SIZE = 50;

export function onlineDot(d: Pick<Device, 'id' | 'online'>): HTMLElement {
  const on = d.online === true;
  return h('span', { class: `dot ${on ? 'dot-on' : 'dot-off'}`, 'data-testid': `online-${d.id}`, 'data-online': String(on), role: 'img', 'aria-label': on ? 'online' : 'offline', title: on ? 'online' : 'offline' });
}

/** A revoked or denied device's certificate does not "end in 24 h": it no longer counts. */
function certificateEnds(d: Device): Child {
  if (d.status === 'revoked') return 'revoked';
  if (d.status === 'denied' || !d.certificate) return '—';
  return h('time', { datetime: d.certificate.notAfter, title: when(d.certificate.notAfter) }, relative(d.certificate.notAfter));
}

export const devicesPage: Page = async (ctx) => {
  const q = ctx.query;
  const sort = (q.get('sort') as DeviceSort | null) ?? 'firstSeen';
  const order = (q.get('order') as SortOrder | null) ?? DEFAULT_DEVICE_ORDER[sort] ?? 'desc';
  // Cursors of the pages before this one (this visit only), for "Previous".
  const back: string[] = (history.state as { back?: string[] } | null)?.back ?? [];

  const search = h('input', { name: 'q', type: 'search', value: q.get('q') ?? '', placeholder: 'name, id, user email or serial', autocomplete: 'off', maxlength: '100' });
  const status = select('status', [['', 'Any status'], ...DEVICE_STATUSES.map((s) => [s, s] as [string, string])], q.get('status') ?? '');
  const group = select('group', [['', 'Any group']], q.get('group') ?? '');
  const online = select('online', [['', 'Online or not'], ['true', 'Online'], ['false', 'Offline']], q.get('online') ?? '');
  const filters = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Devices' },
    field('Search', search),
    field('Status', status),
    field('Group', group),
    field('Online', online),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search')),
  );
  const results = h('div', { class: 'results' }, loading());
  ctx.root.append(pageHeading('Devices'), filters, results);

  const go = (changes: Record<string, string | undefined>, state: { back?: string[] } = {}): void => {
    const next: Record<string, string | undefined> = { q: q.get('q') ?? undefined, status: q.get('status') ?? undefined, group: q.get('group') ?? undefined, online: q.get('online') ?? undefined, sort: q.get('sort') ?? undefined, order: q.get('order') ?? undefined, ...changes };
    ctx.navigate(withQuery('/devices', next), { state });
  };
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    go({ q: search.value.trim() || undefined, status: status.value || undefined, group: group.value || undefined, online: online.value || undefined, cursor: undefined });
  });
  for (const s of [status, group, online]) s.addEventListener('change', () => filters.requestSubmit());

  void api.get<GroupPage>(`${ADMIN}/groups`).then(
    (p) => {
      const current = q.get('group') ?? '';
      group.append(...p.items.map((g) => h('option', { value: g.name, selected: g.name === current }, g.name)));
    },
    () => undefined, // the filter still works by URL
  );

  const sortHeader = (key: DeviceSort, label: string): Column<Device> => {
    const active = sort === key;
    const nextOrder: SortOrder = active ? (order === 'asc' ? 'desc' : 'asc') : DEFAULT_DEVICE_ORDER[key];
    const b = h('button', { type: 'button', class: 'sort' }, label, h('span', { 'aria-hidden': 'true' }, active ? (order === 'asc' ? ' ▲' : ' ▼') : ''));
    b.addEventListener('click', () => go({ sort: key, order: nextOrder, cursor: undefined }));
    return { label, header: b, ariaSort: active ? (order === 'asc' ? 'ascending' : 'descending') : 'none', cell: () => null };
  };

  const load = async (): Promise<void> => {
    try {
      const page = await api.get<DevicePage>(`${ADMIN}/devices`, {
        q: q.get('q'),
        status: q.get('status'),
        group: q.get('group'),
        online: q.get('online'),
        sort,
        order,
        cursor: q.get('cursor'),
        limit: PAGE_SIZE,
      });
      const cols: Column<Device>[] = [
        { ...sortHeader('name', 'Device'), cell: (d) => h('span', { class: 'name-cell' }, onlineDot(d), link(`/devices/${d.id}`, d.name)) },
        { ...sortHeader('status', 'Status'), cell: (d) => badge(d.status) },
        { label: 'Key', cell: (d) => assuranceBadge(d) },
        { ...sortHeader('user', 'User'), cell: (d) => d.user ?? '—' },
        { label: 'Group', cell: (d) => d.group },
        { ...sortHeader('lastSeen', 'Last seen'), cell: (d) => h('time', { datetime: d.lastSeen ?? '', title: when(d.lastSeen) }, relative(d.lastSeen)) },
        { ...sortHeader('firstSeen', 'First seen'), cell: (d) => when(d.firstSeen) },
        { label: 'Certificate ends', cell: certificateEnds },
      ];
      const tableEl = table('Devices', cols, page.items, (d) => ({ 'data-testid': 'device-row', 'data-device-id': d.id }), 'No device matches.');
      const prev = h('button', { type: 'button', class: 'btn', disabled: !q.get('cursor') }, 'Previous');
      const next = h('button', { type: 'button', class: 'btn', disabled: !page.nextCursor }, 'Next');
      prev.addEventListener('click', () => {
        const stack = back.slice();
        const cursor = stack.pop();
        go({ cursor: cursor || undefined }, { back: stack });
      });
      next.addEventListener('click', () => go({ cursor: page.nextCursor ?? undefined }, { back: [...back, q.get('cursor') ?? ''] }));
      replace(results, tableEl, h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, h('span', null, `${page.items.length} shown`), next));
    } catch (err) {
      replace(results, errorPanel(err));
    }
  };
  // The online dots and statuses follow live events: refetch this page (at most once a second).
  ctx.onDispose(onLive(['presence', 'revocation', 'issuance', 'device-approved'], () => void load(), 1000));
  await load();
};
