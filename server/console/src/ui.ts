/** Small shared pieces of the pages: toasts, the confirmation dialog, tables that become cards, badges, copy. */
import { h, replace, type Child } from './dom.js';
import { ApiError } from './api.js';

// ------------------------------------------------------------------ toasts
let toastRegion: HTMLElement | null = null;

/** The live region (role=status) that announces toasts; the shell mounts it once. */
export function toastHost(): HTMLElement {
  toastRegion ??= h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
  return toastRegion;
}

export function toast(message: string, kind: 'ok' | 'error' = 'ok'): void {
  const t = h('p', { class: `toast toast-${kind}` }, message);
  toastHost().append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 10_000 : 5_000);
}

export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

export function toastError(err: unknown): void {
  toast(messageOf(err), 'error');
}

/** Run an action from a button: disabled while it runs, errors shown as a toast. */
export async function act(button: HTMLButtonElement | null, fn: () => Promise<unknown>): Promise<boolean> {
  if (button) button.disabled = true;
  try {
    await fn();
    return true;
  } catch (err) {
    toastError(err);
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}

// ------------------------------------------------------------------ dialog
/**
 * A modal `<dialog>`: `title` names what is about to happen (the device by
 * name), `body` may hold form fields; resolves true on confirm.
 */
export function confirmDialog(opts: { title: string; body: Child; confirm: string; danger?: boolean }): Promise<boolean> {
  return new Promise((resolve) => {
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const cancel = h('button', { type: 'button', class: 'btn' }, 'Cancel');
    const ok = h('button', { type: 'submit', class: opts.danger ? 'btn btn-danger' : 'btn btn-primary' }, opts.confirm);
    const form = h('form', { method: 'dialog' }, h('h2', { id: titleId }, opts.title), h('div', { class: 'dialog-body' }, opts.body), h('div', { class: 'actions' }, cancel, ok));
    const dlg = h('dialog', { 'aria-labelledby': titleId }, form);
    let result = false;
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      result = true;
      dlg.close();
    });
    cancel.addEventListener('click', () => dlg.close());
    dlg.addEventListener('close', () => {
      dlg.remove();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// ------------------------------------------------------------------ tables
export interface Column<T> {
  label: string;
  cell: (row: T) => Child;
  class?: string;
  /** A header that is a sort button (devices), and its aria-sort. */
  header?: Child;
  ariaSort?: 'ascending' | 'descending' | 'none';
}

/** A table that CSS turns into stacked cards on narrow screens (each cell labelled by `data-label`). */
export function table<T>(caption: string, columns: Column<T>[], rows: readonly T[], rowProps?: (row: T) => Record<string, string>, empty = 'Nothing here yet.'): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'cards' },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class, 'aria-sort': c.ariaSort }, c.header ?? c.label)))),
      h(
        'tbody',
        null,
        rows.map((r) => {
          const tr = h('tr', null, columns.map((c) => h('td', { 'data-label': c.label, class: c.class }, c.cell(r))));
          for (const [k, v] of Object.entries(rowProps?.(r) ?? {})) tr.setAttribute(k, v);
          return tr;
        }),
      ),
    ),
  );
}

// ------------------------------------------------------------------ bits
export function badge(text: string, kind = text): HTMLElement {
  return h('span', { class: `badge badge-${kind}` }, text);
}

/**
 * Where a device's key lives (issue 14): "TPM-attested" once an enrollment proved it is in the device's TPM,
 * else "Software key" (also for a server that does not say).
 */
export function assuranceBadge(d: { assurance?: 'software' | 'tpm-attested' | undefined }): HTMLElement {
  return d.assurance === 'tpm-attested' ? badge('TPM-attested', 'attested') : badge('Software key', 'neutral');
}

export function link(href: string, ...children: Child[]): HTMLAnchorElement {
  return h('a', { href }, ...children);
}

export function section(title: string, ...children: Child[]): HTMLElement {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

export function loading(): HTMLElement {
  return h('p', { class: 'loading' }, 'Loading…');
}

/** An error in place of a page's content (e.g. a device that does not exist). */
export function errorPanel(err: unknown): HTMLElement {
  return h('div', { class: 'error-panel', role: 'alert' }, messageOf(err));
}

/** A read-only field holding a secret or a command, with a copy button. */
export function copyField(label: string, value: string): HTMLElement {
  const id = `c-${Math.random().toString(36).slice(2)}`;
  const input = h('input', { id, type: 'text', readonly: true, value, class: 'mono', autocomplete: 'off', spellcheck: 'false' });
  const btn = h('button', { type: 'button', class: 'btn' }, `Copy ${label.toLowerCase()}`);
  btn.addEventListener('click', () => {
    navigator.clipboard.writeText(value).then(
      () => toast(`${label} copied`),
      () => {
        input.select();
        toast('Copying was refused by the browser: the text is selected, press Ctrl+C', 'error');
      },
    );
  });
  return h('div', { class: 'copy-field' }, h('label', { for: id }, label), h('div', { class: 'copy-row' }, input, btn));
}

/** Replace a container's content with the result of `load`, or an error panel. */
export async function fill(el: Element, load: () => Promise<Child>): Promise<void> {
  try {
    replace(el, await load());
  } catch (err) {
    replace(el, errorPanel(err));
  }
}

export function field(label: string, control: HTMLInputElement | HTMLSelectElement, hint?: string): HTMLElement {
  control.id ||= `f-${Math.random().toString(36).slice(2)}`;
  const hintEl = hint ? h('span', { class: 'hint', id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

export function select(name: string, options: readonly (string | [string, string])[], value = ''): HTMLSelectElement {
  return h(
    'select',
    { name },
    options.map((o) => {
      const [v, text] = typeof o === 'string' ? [o, o] : o;
      return h('option', { value: v, selected: v === value }, text);
    }),
  );
}

/** The page's one h1 (focusable, so the router can move focus to it after a navigation). */
export function pageHeading(text: string, ...after: Child[]): HTMLElement {
  return h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, text), ...after);
}
