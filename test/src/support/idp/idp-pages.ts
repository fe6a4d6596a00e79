/**
 * The identity provider's HTML: plain server-rendered forms with the stable
 * ids of PAGE, no script and nothing loaded from elsewhere (oidc-provider's
 * default pages import a web font, which an offline Chromium would wait on).
 */
import { PAGE } from './idp-types.js';

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = (title: string, body: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`;

const errorLine = (error?: string, description?: string): string =>
  error ? `<p id="${PAGE.error}" data-error="${esc(error)}">${esc(error)}${description ? `: ${esc(description)}` : ''}</p>` : '';

export function loginPage(o: { action: string; clientId: string; error?: string; description?: string }): string {
  return page(
    'Sign in',
    `<p>to continue to <b>${esc(o.clientId)}</b></p>${errorLine(o.error, o.description)}
<form id="${PAGE.loginForm}" method="post" action="${esc(o.action)}">
<label>Email or user id <input id="${PAGE.loginField}" name="${PAGE.loginField}" type="text" autocomplete="off"></label>
<label>Password <input id="${PAGE.passwordField}" name="${PAGE.passwordField}" type="password"></label>
<button id="${PAGE.loginSubmit}" type="submit">Sign in</button>
</form>`,
  );
}

export function consentPage(o: { action: string; clientId: string; scopes: string[] }): string {
  return page(
    'Allow access?',
    `<p><b>${esc(o.clientId)}</b> asks for: ${o.scopes.map(esc).join(', ') || '(nothing new)'}</p>
<form id="${PAGE.consentForm}" method="post" action="${esc(o.action)}">
<button id="${PAGE.allowButton}" name="${PAGE.decisionField}" value="allow" type="submit">Allow</button>
<button id="${PAGE.denyButton}" name="${PAGE.decisionField}" value="deny" type="submit">Deny</button>
</form>`,
  );
}

/** The device flow's code entry and confirmation pages around oidc-provider's own form (it carries the xsrf field). */
export function devicePage(o: { title: string; form: string; formId: string; error?: string; description?: string; userCode?: string }): string {
  const code = o.userCode ? `<p>Code shown on the device: <code>${esc(o.userCode)}</code></p>` : '';
  return page(o.title, `${errorLine(o.error, o.description)}${code}${o.form}<button id="${PAGE.deviceSubmit}" type="submit" form="${esc(o.formId)}">Continue</button>`);
}

export function deviceDonePage(clientId: string): string {
  return page('Signed in', `<p id="${PAGE.deviceDone}">You are signed in on the device (${esc(clientId)}). You may close this window.</p>`);
}

export function errorPage(error: string, description?: string): string {
  return page('Error', errorLine(error, description));
}
