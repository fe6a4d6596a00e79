/**
 * Headless Chromium (Debian's, through playwright-core) on the console: a
 * page per signed-in person, the admin-token sign-in as a person does it,
 * and the admin API called from inside the page (same origin, the session
 * cookie, the CSRF header or not).
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM } from '../idp/idp-login.js';
import { until } from '../gateways.js';
import type { TestCtx } from '../processes.js';

export const DESKTOP = { width: 1280, height: 800 } as const;
export const PHONE = { width: 390, height: 844 } as const;

export async function launchBrowser(t: Pick<TestCtx, 'after'>): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-background-networking'], timeout: 30_000 });
  t.after(() => browser.close());
  return browser;
}

/** A fresh browser profile (no cookie) at this size; the server's certificate chains to a root this browser does not know. */
export async function newPage(browser: Browser, viewport: { width: number; height: number } = DESKTOP): Promise<Page> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport, ...(viewport.width < 600 ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}) });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  return page;
}

/** Signs in on /sign-in with an admin token, as a person types it; resolves on `next` with its heading shown. */
export async function signInWithToken(page: Page, baseUrl: string, token: string, next = '/'): Promise<void> {
  await page.goto(`${baseUrl}/sign-in${next === '/' ? '' : `?next=${encodeURIComponent(next)}`}`);
  await page.getByLabel('Admin token').fill(token);
  const landed = page.waitForURL((u) => u.pathname === next.split('?')[0]);
  await page.getByRole('button', { name: 'Sign in with token' }).click();
  await landed;
  await settled(page);
}

/** The page's heading is shown and nothing on it says "Loading…". */
export async function settled(page: Page): Promise<void> {
  await page.locator('main h1').first().waitFor();
  await until(`${page.url()} to finish loading`, async () => ((await page.locator('.loading').count()) === 0 ? true : undefined), 20_000);
}

export interface ConsoleSession {
  actor: string;
  role: 'viewer' | 'operator' | 'admin';
  csrfToken: string;
  serverUrl: string;
  caFingerprint: string;
}

export function consoleSession(page: Page): Promise<ConsoleSession> {
  return page.evaluate(async () => (await fetch('/v1/console/session')).json() as Promise<ConsoleSession>);
}

/** A call to the admin API from inside the page, with the session cookie; `csrf` is the header's value (none when null). */
export function callFromPage(page: Page, method: string, path: string, csrf: string | null, body?: unknown): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  return page.evaluate(
    async ({ method, path, csrf, body }) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (csrf !== null) headers['x-latchkey-csrf'] = csrf;
      const r = await fetch(path, { method, credentials: 'same-origin', headers, ...(method === 'GET' ? {} : { body: JSON.stringify(body ?? {}) }) });
      return { status: r.status, body: (await r.json().catch(() => ({}))) as { error?: { code: string; message: string } } };
    },
    { method, path, csrf, body },
  );
}
