/** /gateways: gateway tokens (for `/v1/events` and `gateway sync`) and the gateways connected now. */
import type { ConnectedGateway, ConsoleOverview, GatewayTokenCreateResponse, GatewayTokenInfo, GatewayTokenPage } from '@latchkey/protocol';
import { ADMIN, api } from '../api.js';
import { append, h, replace } from '../dom.js';
import { bytes, relative, when } from '../format.js';
import { onLive } from '../live.js';
import { can, type Page } from '../page.js';
import { act, badge, confirmDialog, copyField, field, fill, loading, pageHeading, section, table, toast } from '../ui.js';

export function gatewaysTable(gateways: ConnectedGateway[]): HTMLElement {
  return table('Gateways connected to the event stream', [
    { label: 'Gateway', class: 'nowrap', cell: (g) => g.name },
    { label: 'Address', class: 'nowrap', cell: (g) => h('code', null, g.remote) },
    { label: 'Connected', class: 'nowrap', cell: (g) => h('time', { datetime: g.connectedAt, title: when(g.connectedAt) }, relative(g.connectedAt)) },
    { label: 'Last event', class: 'nowrap', cell: (g) => relative(g.lastEventAt) },
    { label: 'Behind', class: 'nowrap', cell: (g) => (g.behindEvents > 0 ? badge(`${g.behindEvents} events`, 'pending') : 'up to date') },
    { label: 'Backlog', class: 'nowrap', cell: (g) => bytes(g.backlogBytes) },
  ], gateways, undefined, 'No gateway is connected to this server replica.');
}

export const gatewaysPage: Page = async (ctx) => {
  const admin = can(ctx.session.role, 'admin');
  const created = h('div');
  const tokens = h('div', null, loading());
  const connected = h('div', null, loading());
  append(ctx.root, [pageHeading('Gateways'), admin ? createForm(created, () => loadTokens()) : null, created, section('Gateway tokens', tokens), section('Connected gateways', connected)]);

  const loadTokens = () =>
    fill(tokens, async () => {
      const page = await api.get<GatewayTokenPage>(`${ADMIN}/gateway-tokens`);
      return table('Gateway tokens', [
        { label: 'Name', cell: (t) => t.name },
        { label: 'Created', cell: (t) => when(t.createdAt) },
        { label: 'By', cell: (t) => t.createdBy },
        { label: 'Status', cell: (t) => (t.revokedAt ? badge('revoked') : badge('active')) },
        ...(admin ? [{ label: 'Actions', cell: (t: GatewayTokenInfo) => (t.revokedAt ? null : revokeButton(t, loadTokens)) }] : []),
      ], page.items, undefined, 'No gateway token yet.');
    });
  const loadConnected = () => fill(connected, async () => gatewaysTable((await api.get<ConsoleOverview>(`${ADMIN}/overview`)).gateways));
  ctx.onDispose(onLive(['audit'], () => void Promise.all([loadTokens(), loadConnected()]), 1000));
  await Promise.all([loadTokens(), loadConnected()]);
};

function revokeButton(t: GatewayTokenInfo, reload: () => Promise<void>): HTMLElement {
  const b = h('button', { type: 'button', class: 'btn btn-danger' }, 'Revoke');
  b.addEventListener('click', () => {
    void confirmDialog({ title: `Revoke gateway token ${t.name}?`, body: h('p', null, 'The gateway using it is disconnected and can no longer sync.'), confirm: 'Revoke', danger: true }).then(
      (ok) => ok && act(b, async () => {
        await api.del(`${ADMIN}/gateway-tokens/${encodeURIComponent(t.id)}`);
        toast(`Gateway token ${t.name} revoked`);
        await reload();
      }),
    );
  });
  return b;
}

function createForm(out: HTMLElement, reload: () => Promise<void>): HTMLElement {
  const name = h('input', { name: 'name', type: 'text', required: true, maxlength: '100', autocomplete: 'off' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create token');
  const form = h('form', { class: 'panel inline-form', 'aria-labelledby': 'gw-create' }, h('h2', { id: 'gw-create' }, 'New gateway token'), h('div', { class: 'fields' }, field('Gateway name', name)), h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void act(submit, async () => {
      const r = await api.post<GatewayTokenCreateResponse>(`${ADMIN}/gateway-tokens`, { name: name.value.trim() });
      replace(
        out,
        h('section', { class: 'panel secret', 'aria-labelledby': 'gw-secret' }, h('h2', { id: 'gw-secret' }, `Token for ${r.info.name}`), h('p', null, 'Shown once: store it with the gateway now (latchkey-server gateway sync --token-file FILE).'), copyField('Token', r.token)),
      );
      form.reset();
      await reload();
    });
  });
  return form;
}
