/** The audit rows as a table: used by the audit log and a device's trail. */
import type { AuditEvent } from '@latchkey/protocol';
import { h, type Child } from './dom.js';
import { stamp, when } from './format.js';
import { table } from './ui.js';

const UUID = /^([0-9a-f]{8})(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
/** Actions whose target is a device id (`certificate.*` are its certificates' issuance). */
const DEVICE_ACTION = /^(device|certificate)\./;

function details(d: Record<string, unknown>): string {
  const parts = Object.entries(d).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.join(', ');
}

/**
 * An id shortened on screen to its first 8 characters and "…"; the rest stays
 * in the text for screen readers, search and copying (visually hidden), and
 * the whole id is the title.
 */
export function shortId(id: string): HTMLElement {
  const m = UUID.exec(id);
  if (!m) return h('code', null, id);
  return h('code', { title: id }, m[1], h('span', { class: 'visually-hidden' }, m[2]), h('span', { 'aria-hidden': 'true' }, '…'));
}

/** `token:<uuid>` and the like: the prefix as is, the id shortened. */
function actor(a: string): Child {
  const i = a.indexOf(':');
  return i > 0 && UUID.test(a.slice(i + 1)) ? h('span', { class: 'nowrap' }, a.slice(0, i + 1), shortId(a.slice(i + 1))) : a;
}

function target(e: AuditEvent, names: ReadonlyMap<string, string>): Child {
  if (!e.target) return '—';
  if (DEVICE_ACTION.test(e.action)) {
    const name = names.get(e.target);
    return h('a', { href: `/devices/${encodeURIComponent(e.target)}` }, name ?? shortId(e.target));
  }
  return UUID.test(e.target) ? shortId(e.target) : e.target;
}

/** `names`: device names known to the caller (a device's own page), shown instead of their ids. */
export function auditTable(rows: readonly AuditEvent[], empty = 'No audit entry matches.', names: ReadonlyMap<string, string> = new Map()): HTMLElement {
  return table('Audit entries, newest first', [
    { label: 'When', class: 'nowrap', cell: (e) => h('time', { datetime: e.at, title: when(e.at) }, stamp(e.at)) },
    { label: 'Actor', cell: (e) => actor(e.actor) },
    { label: 'Action', class: 'nowrap', cell: (e) => h('code', null, e.action) },
    { label: 'Target', cell: (e) => target(e, names) },
    { label: 'Details', cell: (e) => h('span', { class: 'details' }, details(e.details)) },
  ], rows, undefined, empty);
}
