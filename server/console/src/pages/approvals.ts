/** /approvals: pending devices, oldest first; approve or deny in one click each. */
import type { Device, DevicePage } from '@latchkey/protocol';
import { ADMIN, api } from '../api.js';
import { approve, deny } from '../device-actions.js';
import { h, replace } from '../dom.js';
import { relative, when } from '../format.js';
import { onLive } from '../live.js';
import { can, type Page } from '../page.js';
import { act, errorPanel, link, loading, pageHeading, table } from '../ui.js';

export const approvalsPage: Page = async (ctx) => {
  const operator = can(ctx.session.role, 'operator');
  const body = h('div', null, loading());
  ctx.root.append(pageHeading('Pending approvals'), h('p', { class: 'hint' }, 'Devices of groups that require approval wait here; their latchkey enroll completes once approved.'), body);

  const load = async (): Promise<void> => {
    try {
      const page = await api.get<DevicePage>(`${ADMIN}/devices`, { status: 'pending', sort: 'firstSeen', order: 'asc', limit: 100 });
      const actions = (d: Device) => {
        const ok = h('button', { type: 'button', class: 'btn btn-primary', 'aria-label': `Approve ${d.name}` }, 'Approve');
        const no = h('button', { type: 'button', class: 'btn btn-danger', 'aria-label': `Deny ${d.name}` }, 'Deny');
        ok.addEventListener('click', () => void act(ok, () => approve(d)).then((done) => (done ? load() : undefined)));
        no.addEventListener('click', () => void act(no, () => deny(d)).then((done) => (done ? load() : undefined)));
        return h('div', { class: 'row-actions' }, ok, no);
      };
      replace(
        body,
        table('Pending devices, oldest first', [
          { label: 'Device', cell: (d) => link(`/devices/${d.id}`, d.name) },
          { label: 'User', cell: (d) => d.user ?? '—' },
          { label: 'Group', cell: (d) => d.group },
          { label: 'Host', cell: (d) => (d.facts ? `${d.facts.hostname} (${d.facts.os.version ?? d.facts.os.platform})` : '—') },
          { label: 'Waiting since', cell: (d) => h('time', { datetime: d.firstSeen, title: when(d.firstSeen) }, relative(d.firstSeen)) },
          ...(operator ? [{ label: 'Actions', cell: actions }] : []),
        ], page.items, (d) => ({ 'data-testid': 'device-row', 'data-device-id': d.id }), 'No device is waiting for approval.'),
        page.nextCursor ? h('p', null, link('/devices?status=pending&sort=firstSeen&order=asc', 'More pending devices')) : null,
      );
    } catch (err) {
      replace(body, errorPanel(err));
    }
  };
  ctx.onDispose(onLive(['audit', 'device-approved', 'issuance'], () => void load(), 500));
  await load();
};
