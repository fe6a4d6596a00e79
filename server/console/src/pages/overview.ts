/** /: counts, pending approvals, expiring certificates, recent revocations, CRL age, connected gateways. */
import type { ConsoleOverview, CrlAge, Device, GroupPage } from '@latchkey/protocol';
import { ADMIN, api } from '../api.js';
import { approve, deny } from '../device-actions.js';
import { h, replace } from '../dom.js';
import { duration, relative, when } from '../format.js';
import { onLive } from '../live.js';
import { can, type Page } from '../page.js';
import { act, badge, errorPanel, link, loading, pageHeading, section, table } from '../ui.js';
import { gatewaysTable } from './gateways.js';

export const overviewPage: Page = async (ctx) => {
  const body = h('div', { class: 'overview' }, loading());
  ctx.root.append(pageHeading('Overview'), body);
  const operator = can(ctx.session.role, 'operator');

  const load = async (): Promise<void> => {
    try {
      const lifetimes = await api.get<GroupPage>(`${ADMIN}/groups`).then((p) => p.items.map((g) => g.certLifetimeSeconds), () => []);
      const o = await api.get<ConsoleOverview>(`${ADMIN}/overview`, { expiringWithinSeconds: expiringWindow(lifetimes) });
      replace(body, counts(o), pending(o.pendingApprovals, operator, load), expiring(o), revocations(o), crl(o), wide(section('Connected gateways', gatewaysTable(o.gateways))));
    } catch (err) {
      replace(body, errorPanel(err));
    }
  };
  ctx.onDispose(onLive(['audit', 'presence', 'revocation', 'issuance', 'device-approved', 'policy'], () => void load(), 1000));
  await load();
};

/** A section across the whole grid (a table with many columns). */
function wide(el: HTMLElement): HTMLElement {
  el.classList.add('wide');
  return el;
}

function counts(o: ConsoleOverview): HTMLElement {
  const stat = (label: string, value: number, href: string) => h('li', { class: 'stat' }, h('a', { href }, h('span', { class: 'stat-value' }, String(value)), h('span', { class: 'stat-label' }, label)));
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': 's-devices' },
    h('h2', { id: 's-devices' }, 'Devices'),
    h(
      'ul',
      { class: 'stats' },
      stat('online now', o.online, '/devices?online=true'),
      stat('active', o.devices.active, '/devices?status=active'),
      stat('pending', o.devices.pending, '/approvals'),
      stat('revoked', o.devices.revoked, '/devices?status=revoked'),
      stat('denied', o.devices.denied, '/devices?status=denied'),
      stat('total', o.devices.total, '/devices'),
    ),
  );
}

function pending(devices: Device[], operator: boolean, reload: () => Promise<void>): HTMLElement {
  const actions = (d: Device) => {
    if (!operator) return null;
    const ok = h('button', { type: 'button', class: 'btn btn-primary' }, 'Approve');
    const no = h('button', { type: 'button', class: 'btn btn-danger' }, 'Deny');
    ok.addEventListener('click', () => void act(ok, () => approve(d)).then((done) => (done ? reload() : undefined)));
    no.addEventListener('click', () => void act(no, () => deny(d)).then((done) => (done ? reload() : undefined)));
    return h('div', { class: 'row-actions' }, ok, no);
  };
  return section(
    'Pending approvals',
    table('Devices waiting for approval, oldest first', [
      { label: 'Device', cell: (d) => link(`/devices/${d.id}`, d.name) },
      { label: 'User', cell: (d) => d.user ?? '—' },
      { label: 'Group', cell: (d) => d.group },
      { label: 'Waiting since', cell: (d) => relative(d.firstSeen) },
      ...(operator ? [{ label: 'Actions', cell: actions }] : []),
    ], devices, undefined, 'No device is waiting for approval.'),
    devices.length ? h('p', null, link('/approvals', 'All pending approvals')) : null,
  );
}

/** Without groups to go by: a quarter of the default 24 h lifetime. */
const DEFAULT_WINDOW_SECONDS = 6 * 3600;
const MIN_WINDOW_SECONDS = 60;
const MAX_WINDOW_SECONDS = 90 * 86400;

/**
 * How close to its end a certificate must be to count as "not renewed":
 * agents renew at 2/3 of the lifetime (± 10 %), so with the shortest
 * lifetime in use a healthy agent renews with more than a quarter of it
 * left. Within a quarter of it, the agent is offline or failing to renew.
 */
export function expiringWindow(lifetimes: readonly number[]): number {
  if (lifetimes.length === 0) return DEFAULT_WINDOW_SECONDS;
  const quarter = Math.floor(Math.min(...lifetimes) / 4);
  return Math.min(MAX_WINDOW_SECONDS, Math.max(MIN_WINDOW_SECONDS, quarter));
}

function expiring(o: ConsoleOverview): HTMLElement {
  const e = o.expiringSoon;
  const within = duration(e.withinSeconds);
  return section(
    `Certificates ending within ${within}`,
    h('p', { class: 'hint' }, `${e.count ? `${e.count} active device${e.count === 1 ? '' : 's'}. ` : ''}Agents renew at 2/3 of a certificate's lifetime: one this close to its end means its agent is offline or failing to renew.`),
    table(`Certificates ending within ${within}`, [
      { label: 'Device', cell: (i) => link(`/devices/${i.deviceId}`, i.name) },
      { label: 'Serial', cell: (i) => h('code', null, i.serial), class: 'mono' },
      { label: 'Ends', cell: (i) => h('time', { datetime: i.notAfter, title: when(i.notAfter) }, relative(i.notAfter)) },
    ], e.items, undefined, `No certificate ends within ${within}.`),
  );
}

function revocations(o: ConsoleOverview): HTMLElement {
  return section(
    'Recent revocations',
    table('Recent revocations', [
      { label: 'Device', cell: (r) => link(`/devices/${r.deviceId}`, r.name) },
      { label: 'When', cell: (r) => h('time', { datetime: r.at, title: when(r.at) }, relative(r.at)) },
      { label: 'Reason', cell: (r) => r.reason ?? '—' },
      { label: 'By', cell: (r) => r.actor },
    ], o.recentRevocations, undefined, 'No device has been revoked.'),
  );
}

function crl(o: ConsoleOverview): HTMLElement {
  const row = (name: string, c: CrlAge | null) =>
    h(
      'div',
      { class: 'crl' },
      h('dt', null, name),
      h('dd', null, c ? [`#${c.crlNumber}, made ${duration(c.ageSeconds)} ago; next by `, h('time', { datetime: c.nextUpdate }, when(c.nextUpdate)), ' ', new Date(c.nextUpdate).getTime() < Date.now() ? badge('overdue', 'revoked') : null] : 'not made yet'),
    );
  return section('Served CRLs', h('dl', { class: 'facts' }, row('Issuing CA', o.crl.issuing), row('Root CA', o.crl.root)));
}
