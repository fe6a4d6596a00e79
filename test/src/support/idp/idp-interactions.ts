/**
 * The login and consent pages behind oidc-provider's interactions
 * (`/interaction/:uid`), in place of devInteractions: login checks the
 * password and that the account is not disabled, consent grants what the
 * client asked for or ends with access_denied.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import { consentPage, errorPage, loginPage } from './idp-pages.js';
import { PAGE, type IdpAccount } from './idp-types.js';

export const INTERACTION_PREFIX = '/interaction/';

async function formBody(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const send = (res: ServerResponse, status: number, body: string): void => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body);
};

/** By user id or email, as a person would type it. */
function findByLogin(accounts: Map<string, IdpAccount>, login: string): IdpAccount | undefined {
  const l = login.trim().toLowerCase();
  return accounts.get(login.trim()) ?? [...accounts.values()].find((a) => a.email.toLowerCase() === l);
}

export async function handleInteraction(provider: Provider, accounts: Map<string, IdpAccount>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const [uid, action] = new URL(req.url ?? '/', 'http://x').pathname.slice(INTERACTION_PREFIX.length).split('/');
  let details: Awaited<ReturnType<Provider['interactionDetails']>>;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    return send(res, 400, errorPage('invalid_request', `no interaction in progress (${(e as Error).message})`));
  }
  if (details.uid !== uid) return send(res, 400, errorPage('invalid_request', 'interaction cookie does not match the URL'));
  const clientId = String(details.params.client_id);
  const base = `${INTERACTION_PREFIX}${uid}`;

  if (req.method === 'GET' && action === undefined) {
    if (details.prompt.name === 'login') return send(res, 200, loginPage({ action: `${base}/login`, clientId }));
    const scopes = (details.prompt.details.missingOIDCScope as string[] | undefined) ?? [];
    return send(res, 200, consentPage({ action: `${base}/consent`, clientId, scopes }));
  }
  if (req.method === 'POST' && action === 'login' && details.prompt.name === 'login') {
    const form = await formBody(req);
    const account = findByLogin(accounts, form.get(PAGE.loginField) ?? '');
    if (!account || account.password !== form.get(PAGE.passwordField)) {
      return send(res, 401, loginPage({ action: `${base}/login`, clientId, error: 'login_failed', description: 'unknown user or wrong password' }));
    }
    if (account.disabled) return send(res, 403, loginPage({ action: `${base}/login`, clientId, error: 'account_disabled', description: 'this account is disabled' }));
    return provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'consent' && details.prompt.name === 'consent') {
    const form = await formBody(req);
    if (form.get(PAGE.decisionField) !== 'allow') {
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user denied the request' }, { mergeWithLastSubmission: false });
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await saveGrant(provider, details) } }, { mergeWithLastSubmission: true });
  }
  return send(res, 400, errorPage('invalid_request', `unexpected ${req.method} ${action ?? ''} during the ${details.prompt.name} prompt`));
}

/** Grants what the consent prompt found missing (scopes, claims, resource scopes), as oidc-provider's example does. */
async function saveGrant(provider: Provider, details: Awaited<ReturnType<Provider['interactionDetails']>>): Promise<string> {
  const accountId = details.session?.accountId;
  if (!accountId) throw new Error('consent without a signed-in account');
  const clientId = String(details.params.client_id);
  const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(resource, scopes.join(' '));
  return grant.save();
}
