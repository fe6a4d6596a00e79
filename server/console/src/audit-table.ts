/** The audit rows as a table: used by the audit log and a device's trail. */
import type { AuditEvent } from '@latchkey/protocol';
import { h } from './dom.js';
import { when } from './format.js';
import { table } from './ui.js';

function details(d: Record<string, unknown>): string {
  const parts = Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.join(', ');
}

export function auditTable(rows: readonly AuditEvent[], empty = 'No audit entry matches.'): HTMLElement {
  return table('Audit entries, newest first', [
    { label: 'When', cell: (e) => h('time', { datetime: e.at }, when(e.at)) },
    { label: 'Actor', cell: (e) => e.actor },
    { label: 'Action', cell: (e) => h('code', null, e.action) },
    { label: 'Target', cell: (e) => e.target ?? '—' },
    { label: 'Details', cell: (e) => h('span', { class: 'details' }, details(e.details)) },
  ], rows, undefined, empty);
}
