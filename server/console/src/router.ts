/**
 * History-API router: every console URL gets the same HTML shell from the
 * server, and this picks the page. Internal links are plain <a href="/…">;
 * clicks on them are turned into pushState navigations.
 */
import type { AdminRole } from '@latchkey/protocol';
import type { Page, PageContext } from './page.js';

export interface Route {
  path: string;
  title: string;
  load: () => Page;
  /** Shown in the main navigation with this label. */
  nav?: string;
  /** The role the page needs (its nav entry is hidden below it). */
  minRole?: AdminRole;
}

export function match(routes: readonly Route[], pathname: string): { route: Route; params: Record<string, string> } | null {
  const parts = pathname.replace(/\/+$/, '').split('/').slice(1);
  for (const route of routes) {
    const pat = route.path === '/' ? [] : route.path.split('/').slice(1);
    if (pat.length !== (parts.length === 1 && parts[0] === '' ? 0 : parts.length)) continue;
    const params: Record<string, string> = {};
    let ok = true;
    pat.forEach((p, i) => {
      const v = parts[i] ?? '';
      if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(v);
      else if (p !== v) ok = false;
    });
    if (ok) return { route, params };
  }
  return null;
}

export function startRouter(opts: {
  routes: readonly Route[];
  notFound: Page;
  main: HTMLElement;
  context: Pick<PageContext, 'session'>;
  onRoute: (pathname: string) => void;
}): PageContext['navigate'] {
  const disposers: (() => void)[] = [];
  let first = true;

  const render = (): void => {
    for (const d of disposers.splice(0)) d();
    const m = match(opts.routes, location.pathname);
    const root = document.createElement('div');
    root.className = 'page';
    opts.main.replaceChildren(root);
    const setTitle = (t: string): void => {
      document.title = `${t} · Latchkey`;
    };
    setTitle(m?.route.title ?? 'Not found');
    opts.onRoute(location.pathname);
    const ctx: PageContext = {
      session: opts.context.session,
      params: m?.params ?? {},
      query: new URLSearchParams(location.search),
      root,
      onDispose: (fn) => disposers.push(fn),
      navigate,
      setTitle,
    };
    const page = m ? m.route.load() : opts.notFound;
    const focusHeading = !first;
    first = false;
    void Promise.resolve(page(ctx)).finally(() => {
      // After an in-app navigation, move focus to the new page's heading (screen readers announce it).
      if (focusHeading && !opts.main.contains(document.activeElement)) root.querySelector<HTMLElement>('h1')?.focus();
    });
  };

  function navigate(path: string, o: { replace?: boolean; state?: unknown } = {}): void {
    if (o.replace) history.replaceState(o.state ?? null, '', path);
    else history.pushState(o.state ?? null, '', path);
    render();
  }

  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = (ev.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
    if (a.hash && a.pathname === location.pathname) return; // in-page anchor (the skip link)
    // Links to the API (sign-in/out endpoints, downloads) are real navigations.
    if (a.pathname.startsWith('/v1/') || a.pathname.startsWith('/assets/')) return;
    ev.preventDefault();
    if (a.pathname + a.search !== location.pathname + location.search) navigate(a.pathname + a.search);
  });
  window.addEventListener('popstate', render);
  render();
  return navigate;
}
