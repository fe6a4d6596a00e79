/**
 * Entry point: the sign-in page stands alone; every other page needs a
 * console session (GET /v1/console/session: role, CSRF token), then the
 * shell (header, navigation, main, toasts) and the router.
 */
import { loadSession } from './api.js';
import { h } from './dom.js';
import { startLive } from './live.js';
import { notFoundPage } from './pages/not-found.js';
import { signInPage } from './pages/sign-in.js';
import { ROUTES } from './routes.js';
import { startRouter } from './router.js';
import { renderShell } from './shell.js';
import { errorPanel } from './ui.js';

async function boot(): Promise<void> {
  const app = document.getElementById('app') ?? document.body.appendChild(h('div', { id: 'app' }));
  if (location.pathname === '/sign-in') {
    document.title = 'Sign in · Latchkey';
    await signInPage(app);
    return;
  }
  let session;
  try {
    session = await loadSession();
  } catch (err) {
    app.replaceChildren(h('main', { id: 'main' }, h('h1', null, 'Latchkey console'), errorPanel(err)));
    return;
  }
  const shell = renderShell(app, session);
  startRouter({ routes: ROUTES, notFound: notFoundPage, main: shell.main, context: { session }, onRoute: shell.setCurrent });
  startLive();
}

void boot();
