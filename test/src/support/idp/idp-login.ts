/**
 * The user's side of a sign-in at the test identity provider:
 * - completeDeviceLogin: RFC 8628 §3.3, the user on another device opens the
 *   verification URI, types the code, signs in and consents; plain HTTP with
 *   a cookie jar, filling the pages' forms.
 * - completeBrowserLogin: RFC 8252 §7.3, headless Chromium (playwright-core)
 *   from an authorize URL through login and consent to the caller's loopback
 *   redirect, which the caller's own listener receives.
 */
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { skipOrRequire, type TestCtx } from '../processes.js';
import { PAGE } from './idp-types.js';

export type Decision = 'allow' | 'deny';

export interface LoginInput {
  login: string;
  password: string;
  decision: Decision;
}

// ---------------------------------------------------------------- HTTP

interface Page {
  url: string;
  status: number;
  html: string;
}

interface Form {
  action: string;
  fields: URLSearchParams;
}

const unescape = (s: string): string =>
  s.replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n))).replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

const attrs = (tag: string): Map<string, string> => new Map([...tag.matchAll(/([\w.:-]+)="([^"]*)"/g)].map((m) => [m[1]!, unescape(m[2]!)]));

/** What a page shows, for error messages: its title and its #error line. */
function pageSummary(p: Page): string {
  const title = /<title>([^<]*)<\/title>/.exec(p.html)?.[1] ?? '(no title)';
  const error = new RegExp(`id="${PAGE.error}"[^>]*>([^<]*)<`).exec(p.html)?.[1];
  return `HTTP ${p.status} "${unescape(title)}" at ${p.url}${error ? `, error: ${unescape(error)}` : ''}`;
}

/** The form with this id, its action resolved and its input fields (hidden ones included) filled in. */
function form(p: Page, id: string, what: string): Form {
  for (const m of p.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const a = attrs(m[1]!);
    if (a.get('id') !== id) continue;
    const fields = new URLSearchParams();
    for (const input of m[2]!.matchAll(/<input\b([^>]*)>/g)) {
      const ia = attrs(input[1]!);
      if (ia.has('name')) fields.set(ia.get('name')!, ia.get('value') ?? '');
    }
    return { action: new URL(a.get('action') ?? p.url, p.url).href, fields };
  }
  throw new Error(`expected ${what} (form #${id}), got ${pageSummary(p)}`);
}

/** A cookie jar for one origin, enough for oidc-provider's session and interaction cookies. */
class FormClient {
  private readonly cookies = new Map<string, string>();

  async get(url: string): Promise<Page> {
    return this.follow(url, { method: 'GET' });
  }

  async submit(f: Form): Promise<Page> {
    return this.follow(f.action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: f.fields.toString() });
  }

  /** Follows redirects by hand so that every hop's Set-Cookie lands in the jar. */
  private async follow(url: string, init: RequestInit): Promise<Page> {
    let next = url;
    let req = init;
    for (let hop = 0; hop < 10; hop++) {
      const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
      const res = await fetch(next, { ...req, redirect: 'manual', headers: { ...(req.headers as Record<string, string>), ...(cookie ? { cookie } : {}) } });
      this.store(res.headers.getSetCookie());
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        next = new URL(location, next).href;
        req = { method: 'GET' };
        continue;
      }
      return { url: next, status: res.status, html: await res.text() };
    }
    throw new Error(`more than 10 redirects from ${url}`);
  }

  private store(setCookies: string[]): void {
    for (const sc of setCookies) {
      const [pair, ...opts] = sc.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const expired = opts.some((o) => {
        const [k, v = ''] = o.trim().split('=');
        return (k!.toLowerCase() === 'expires' && Date.parse(v) <= Date.now()) || (k!.toLowerCase() === 'max-age' && Number(v) <= 0);
      });
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, pair!.slice(eq + 1).trim());
    }
  }
}

/**
 * The user completes a device authorization at the IdP over HTTP. Resolves
 * once the IdP shows the outcome matching `decision` (signed in / access
 * denied); throws, naming the page, when a page is not the one expected
 * (unknown code, refused login, ...).
 */
export async function completeDeviceLogin(o: LoginInput & { verificationUri: string; userCode: string }): Promise<void> {
  const ua = new FormClient();
  const entry = form(await ua.get(o.verificationUri), PAGE.deviceInputForm, 'the device code entry page');
  entry.fields.set('user_code', o.userCode);
  const confirm = form(await ua.submit(entry), PAGE.deviceConfirmForm, `the device confirmation page for code ${o.userCode}`);
  const login = form(await ua.submit(confirm), PAGE.loginForm, 'the login page');
  login.fields.set(PAGE.loginField, o.login);
  login.fields.set(PAGE.passwordField, o.password);
  const consent = form(await ua.submit(login), PAGE.consentForm, `the consent page after signing in as ${o.login}`);
  consent.fields.set(PAGE.decisionField, o.decision);
  const done = await ua.submit(consent);
  if (o.decision === 'allow' && !done.html.includes(`id="${PAGE.deviceDone}"`)) throw new Error(`expected the device sign-in success page, got ${pageSummary(done)}`);
  if (o.decision === 'deny' && !done.html.includes(`data-error="access_denied"`)) throw new Error(`expected the access_denied page after denying, got ${pageSummary(done)}`);
}

// ---------------------------------------------------------------- Chromium

export const CHROMIUM = '/usr/bin/chromium';

/** True when Debian's Chromium is there; otherwise skips the test (fails it under LATCHKEY_REQUIRE_ALL=1). */
export function chromiumOrSkip(t: TestCtx): boolean {
  if (existsSync(CHROMIUM)) return true;
  skipOrRequire(t, `chromium is missing at ${CHROMIUM} (apt-get install chromium)`);
  return false;
}

/**
 * Headless Chromium opens `url` (an authorize URL with a loopback
 * redirect_uri), signs in, decides at consent, and resolves with the URL it
 * was redirected to (code or error in the query) once the navigation to the
 * redirect URI has begun; the caller's listener answers it.
 */
export async function completeBrowserLogin(o: LoginInput & { url: string; timeoutMs?: number }): Promise<string> {
  const redirect = new URL(o.url).searchParams.get('redirect_uri');
  if (!redirect) throw new Error(`no redirect_uri in ${o.url}`);
  const target = new URL(redirect);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-background-networking'], timeout: o.timeoutMs ?? 30_000 });
  try {
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(o.timeoutMs ?? 15_000);
    const expect = async (selector: string, what: string): Promise<void> => {
      await page.locator(`${selector}, #${PAGE.error}`).first().waitFor();
      if (await page.locator(`#${PAGE.error}`).count()) throw new Error(`expected ${what}, got "${await page.title()}" at ${page.url()}: ${await page.locator(`#${PAGE.error}`).innerText()}`);
    };
    await page.goto(o.url);
    await expect(`#${PAGE.loginForm}`, 'the login page');
    await page.fill(`#${PAGE.loginField}`, o.login);
    await page.fill(`#${PAGE.passwordField}`, o.password);
    await page.click(`#${PAGE.loginSubmit}`);
    await expect(`#${PAGE.consentForm}`, `the consent page after signing in as ${o.login}`);
    const reached = page.waitForURL((u) => u.origin === target.origin && u.pathname === target.pathname, { waitUntil: 'commit' });
    await page.click(`#${o.decision === 'allow' ? PAGE.allowButton : PAGE.denyButton}`);
    await reached;
    return page.url();
  } finally {
    await browser.close();
  }
}
