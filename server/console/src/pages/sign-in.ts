/**
 * /sign-in: the identity providers as links (the server runs the
 * authorization code flow with PKCE and comes back with the cookie), and,
 * only while no IdP is configured, the admin token form.
 */
import { CONSOLE_PATHS } from '@latchkey/protocol/wire';
import { ApiError, request, safeNext, withQuery } from '../api.js';
import type { ConsoleSignInOptions } from '@latchkey/protocol';
import { h } from '../dom.js';
import { errorPanel, messageOf } from '../ui.js';

export async function signInPage(app: HTMLElement): Promise<void> {
  const params = new URLSearchParams(location.search);
  const next = safeNext(params.get('next'));
  const error = params.get('error');
  const main = h('main', { id: 'main', class: 'sign-in' }, h('h1', null, 'Sign in to Latchkey'));
  app.replaceChildren(main);
  if (error) main.append(h('p', { class: 'error-panel', role: 'alert' }, error));

  let options: ConsoleSignInOptions;
  try {
    options = await request<ConsoleSignInOptions>('GET', CONSOLE_PATHS.signInOptions, undefined, { redirectOn401: false });
  } catch (err) {
    main.append(errorPanel(err));
    return;
  }

  if (options.providers.length > 0) {
    main.append(
      h(
        'ul',
        { class: 'providers' },
        options.providers.map((p) => h('li', null, h('a', { class: 'btn btn-primary btn-block', href: withQuery(CONSOLE_PATHS.signInSso, { issuer: p.issuer, next }) }, `Sign in with ${p.name}`))),
      ),
    );
  }
  if (options.tokenSignIn) main.append(tokenForm(next));
  if (options.providers.length === 0 && !options.tokenSignIn) {
    main.append(h('p', { role: 'alert', class: 'error-panel' }, 'No way to sign in is configured on this server; see latchkey-server start --help for the oidc settings.'));
  }
}

function tokenForm(next: string): HTMLElement {
  const input = h('input', { id: 'admin-token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in with token');
  const form = h(
    'form',
    { class: 'panel token-form' },
    h('label', { for: 'admin-token' }, 'Admin token'),
    h('p', { class: 'hint', id: 'admin-token-hint' }, 'The bootstrap token that latchkey-server init printed, or an admin API token (lk_adm_…).'),
    input,
    status,
    submit,
  );
  input.setAttribute('aria-describedby', 'admin-token-hint');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    status.textContent = '';
    submit.disabled = true;
    request('POST', CONSOLE_PATHS.signInToken, { token: input.value.trim() }, { redirectOn401: false }).then(
      () => location.assign(next),
      (err: unknown) => {
        submit.disabled = false;
        status.textContent = err instanceof ApiError && err.status === 401 ? `${err.message}` : messageOf(err);
        input.select();
      },
    );
  });
  return form;
}
