/** The frame around every signed-in page: skip link, header with navigation and sign-out, main, toasts. */
import { CONSOLE_PATHS } from '@latchkey/protocol/wire';
import { api } from './api.js';
import type { ConsoleSession } from '@latchkey/protocol';
import { h } from './dom.js';
import { onLiveState } from './live.js';
import { can } from './page.js';
import { ROUTES } from './routes.js';
import { act, toastHost } from './ui.js';

export function renderShell(app: HTMLElement, session: ConsoleSession): { main: HTMLElement; setCurrent: (pathname: string) => void } {
  const links = ROUTES.filter((r) => r.nav && can(session.role, r.minRole ?? 'viewer')).map((r) => h('a', { href: r.path, class: 'nav-link' }, r.nav!));
  const signOut = h('button', { type: 'button', class: 'btn btn-quiet' }, 'Sign out');
  signOut.addEventListener('click', () => {
    void act(signOut, async () => {
      await api.post(CONSOLE_PATHS.signOut);
      location.assign('/sign-in');
    });
  });
  const liveState = h('span', { class: 'live-state', title: 'Live updates' }, 'Connecting…');
  onLiveState((up) => {
    liveState.textContent = up ? 'Live' : 'Reconnecting…';
    liveState.classList.toggle('up', up);
  });
  const who = session.user ?? session.actor;
  const header = h(
    'header',
    { class: 'top' },
    h('a', { class: 'brand', href: '/' }, 'Latchkey'),
    h('nav', { 'aria-label': 'Main' }, h('ul', null, links.map((a) => h('li', null, a)))),
    h('div', { class: 'who' }, liveState, h('span', { class: 'who-name', title: who }, who), h('span', { class: 'badge badge-role' }, session.role), signOut),
  );
  const main = h('main', { id: 'main', tabindex: '-1' });
  app.replaceChildren(h('a', { class: 'skip', href: '#main' }, 'Skip to content'), header, main, toastHost());
  const setCurrent = (pathname: string): void => {
    for (const a of links) {
      const path = a.pathname;
      const current = path === '/' ? pathname === '/' : pathname === path || pathname.startsWith(path + '/');
      if (current) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  };
  return { main, setCurrent };
}
