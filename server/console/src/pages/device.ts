/** /devices/:id: facts, person, group, certificate history, audit trail, and the actions the role allows. */
import type { AuditPage, DeviceDetail, DeviceFacts } from '@latchkey/protocol';
import { ADMIN, api } from '../api.js';
import { auditTable } from '../audit-table.js';
import { approve, denyWithConfirm, renewNow, revokeWithConfirm } from '../device-actions.js';
import { h, replace, type Child } from '../dom.js';
import { relative, when } from '../format.js';
import { onLive } from '../live.js';
import { can, type Page } from '../page.js';
import { act, assuranceBadge, badge, errorPanel, loading, pageHeading, section, table } from '../ui.js';
import { onlineDot } from './devices.js';

export const devicePage: Page = async (ctx) => {
  const id = ctx.params.id ?? '';
  const body = h('div', null, loading());
  const head = pageHeading('Device');
  ctx.root.append(h('p', { class: 'crumb' }, h('a', { href: '/devices' }, '← Devices')), head, body);
  const operator = can(ctx.session.role, 'operator');

  const load = async (): Promise<void> => {
    try {
      const path = `${ADMIN}/devices/${encodeURIComponent(id)}`;
      const [d, audit] = await Promise.all([api.get<DeviceDetail>(path), api.get<AuditPage>(`${ADMIN}/audit`, { target: id, limit: 50 })]);
      ctx.setTitle(d.name);
      const h1 = head.querySelector('h1')!;
      h1.textContent = d.name;
      replace(body, operator ? actions(d, load) : null, facts(d), certificates(d), section('Audit trail', auditTable(audit.items, 'No audit entry for this device.', new Map([[d.id, d.name]]))));
    } catch (err) {
      replace(body, errorPanel(err));
    }
  };
  ctx.onDispose(
    onLive(['audit', 'presence', 'revocation', 'issuance', 'device-approved'], (event, data) => {
      // Audit rows name their target: refetch only for this device's; presence changes may be it.
      if (event === 'audit' && (data as { target?: unknown } | null)?.target !== id) return;
      void load();
    }, 500),
  );
  await load();
};

function actions(d: DeviceDetail, reload: () => Promise<void>): HTMLElement | null {
  const buttons: HTMLButtonElement[] = [];
  const button = (text: string, cls: string, run: (b: HTMLButtonElement) => Promise<unknown>) => {
    const b = h('button', { type: 'button', class: `btn ${cls}` }, text);
    b.addEventListener('click', () => void act(b, async () => (await run(b)) !== false && reload()));
    buttons.push(b);
  };
  if (d.status === 'pending') {
    button('Approve', 'btn-primary', () => approve(d));
    button('Deny', 'btn-danger', () => denyWithConfirm(d));
  }
  if (d.status === 'active') {
    button('Renew now', '', () => renewNow(d));
    button('Revoke', 'btn-danger', () => revokeWithConfirm(d));
  }
  return buttons.length ? h('div', { class: 'panel row-actions page-actions', role: 'group', 'aria-label': 'Actions' }, buttons) : null;
}

function facts(d: DeviceDetail): HTMLElement {
  const row = (k: string, v: Child) => h('div', null, h('dt', null, k), h('dd', null, v));
  const f = d.facts;
  return section(
    'Facts',
    h(
      'dl',
      { class: 'facts' },
      row('Status', [badge(d.status), d.revocationReason ? ` (${d.revocationReason})` : null]),
      row('Online', h('span', { class: 'name-cell' }, onlineDot(d), d.online ? 'online now' : 'offline')),
      row('Key', assuranceBadge(d)),
      d.tpm
        ? [
            row('EK hash (SHA-256)', h('code', null, d.tpm.ekHash)),
            row('EK trusted by', d.tpm.ekTrust === 'certificate' ? 'its EK certificate, which chains to a trusted TPM manufacturer root' : 'registration: an admin registered this EK'),
            row('TPM manufacturer', d.tpm.manufacturer ?? '—'),
            row('Attested', when(d.tpm.attestedAt)),
          ]
        : null,
      row('User', d.user ?? '—'),
      row('Group', d.group),
      row('Id', h('code', null, d.id)),
      row('First seen', when(d.firstSeen)),
      row('Last seen', d.lastSeen ? `${when(d.lastSeen)} (${relative(d.lastSeen)})` : '—'),
      d.revokedAt ? row('Revoked', when(d.revokedAt)) : null,
      f
        ? [
            row('Hostname', f.hostname),
            row('Operating system', osLine(f)),
            row('Hardware id', h('code', null, f.hardwareId)),
            row('Agent version', f.agentVersion),
            f.userEmail ? row('User (reported by the agent)', f.userEmail) : null,
          ]
        : row('Facts', 'not reported'),
    ),
  );
}

/**
 * "linux 6.18.44 (x64)", or the product name when the agent reports one
 * ("Windows 10 Pro (x64)"). `os.version()` on Linux and macOS is the kernel
 * build string ("#1 SMP PREEMPT_DYNAMIC …", "Darwin Kernel Version …"):
 * never the headline, only a secondary line.
 */
export function osLine(f: DeviceFacts): Child {
  const { platform, release, version } = f.os;
  const product = version && !/^#|kernel version/i.test(version) ? version : undefined;
  const head = product ? `${product} (${f.arch})` : `${platform} ${release} (${f.arch})`;
  const secondary = product ? `${platform} ${release}` : version;
  return [head, secondary ? h('span', { class: 'details secondary' }, secondary) : null];
}

function certificates(d: DeviceDetail): HTMLElement {
  return section(
    'Certificate history',
    table('Certificates, newest first', [
      { label: 'Serial', cell: (c) => h('code', null, c.serial), class: 'mono' },
      { label: 'Kind', cell: (c) => c.kind },
      { label: 'Valid from', cell: (c) => when(c.notBefore) },
      { label: 'Valid to', cell: (c) => when(c.notAfter) },
      { label: 'Revoked', cell: (c) => (c.revokedAt ? `${when(c.revokedAt)}${c.revocationReason ? ` (${c.revocationReason})` : ''}` : '—') },
    ], d.certificates, undefined, 'No certificate issued yet.'),
  );
}
