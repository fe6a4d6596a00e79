/**
 * Approve, deny, revoke and renew-now, shared by the overview, the approvals
 * queue and the device page. Revoke always asks first, in a dialog that
 * names the device, with the RFC 5280 reason.
 */
import type { RevokeReason } from '@latchkey/protocol';
import { REVOKE_REASONS } from '@latchkey/protocol/wire';
import { ADMIN, api } from './api.js';
import { h } from './dom.js';
import { confirmDialog, field, select, toast } from './ui.js';

const REASON_TEXT: Record<RevokeReason, string> = {
  unspecified: 'Unspecified',
  keyCompromise: 'Key compromise (lost or stolen)',
  affiliationChanged: 'Affiliation changed',
  superseded: 'Superseded (replaced)',
  cessationOfOperation: 'Cessation of operation (retired)',
  privilegeWithdrawn: 'Privilege withdrawn',
};

const path = (id: string) => `${ADMIN}/devices/${encodeURIComponent(id)}`;

export async function approve(device: { id: string; name: string }): Promise<void> {
  await api.post(`${path(device.id)}/approve`);
  toast(`${device.name} approved`);
}

export async function deny(device: { id: string; name: string }, reason?: string): Promise<void> {
  await api.post(`${path(device.id)}/deny`, reason ? { reason } : {});
  toast(`${device.name} denied`);
}

export async function renewNow(device: { id: string; name: string }): Promise<void> {
  await api.post(`${path(device.id)}/renew-now`);
  toast(`Renewal of ${device.name} requested: its agent renews when it is online`);
}

/** Asks (naming the device and its id) and revokes; false when the person cancelled. */
export async function revokeWithConfirm(device: { id: string; name: string }): Promise<boolean> {
  const reason = select(
    'reason',
    REVOKE_REASONS.map((r) => [r, REASON_TEXT[r]] as [string, string]),
    'unspecified',
  );
  const ok = await confirmDialog({
    title: `Revoke ${device.name}?`,
    body: [
      h('p', null, 'The device ', h('strong', null, device.name), ' (', h('code', null, device.id), ') loses its certificate now; its agent is told and gateways refuse it. This cannot be undone.'),
      field('Reason', reason),
    ],
    confirm: 'Revoke',
    danger: true,
  });
  if (!ok) return false;
  await api.post(`${path(device.id)}/revoke`, { reason: reason.value });
  toast(`${device.name} revoked`);
  return true;
}

/** Asks before refusing a pending device for good, with an optional reason for the audit log. */
export async function denyWithConfirm(device: { id: string; name: string }): Promise<boolean> {
  const reason = h('input', { name: 'reason', type: 'text', maxlength: '200', autocomplete: 'off' });
  const ok = await confirmDialog({
    title: `Deny ${device.name}?`,
    body: [h('p', null, 'The device ', h('strong', null, device.name), ' is refused for good and its waiting agent told.'), field('Reason (optional, for the audit log)', reason)],
    confirm: 'Deny',
    danger: true,
  });
  if (!ok) return false;
  await deny(device, reason.value.trim() || undefined);
  return true;
}
