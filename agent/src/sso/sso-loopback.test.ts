import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { startLoopback } from './sso-loopback.js';

const STATE = 'st_0123456789abcdefghijklmnop';

function get(url: string, method = 'GET'): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('RFC 8252 §7.3 loopback redirect listener', () => {
  test('listens on 127.0.0.1 at a port the system picked, path /callback', async () => {
    const lb = await startLoopback();
    try {
      assert.match(lb.redirectUri, /^http:\/\/127\.0\.0\.1:\d{1,5}\/callback$/);
      // The same pattern the server's AuthBrowserStart schema holds it to.
      assert.match(lb.redirectUri, /^http:\/\/(127\.0\.0\.1|\[::1\]):[0-9]{1,5}\/[A-Za-z0-9/_-]*$/);
      assert.notEqual(new URL(lb.redirectUri).port, '0');
    } finally {
      await lb.close();
    }
  });

  test('requests without this state are answered 400 and ignored; the one with it is taken, then the listener is gone', async () => {
    const lb = await startLoopback();
    const waiting = lb.wait(STATE, 10_000);
    let settled = false;
    void waiting.then(() => (settled = true));
    const base = lb.redirectUri;
    // A local process injecting its own code: no state, a wrong state, a POST, another path.
    assert.equal((await get(`${base}?code=evil`)).status, 400);
    assert.equal((await get(`${base}?code=evil&state=st_wrong0123456789abcdefghij`)).status, 400);
    assert.equal((await get(`${base}?code=evil&state=${STATE}`, 'POST')).status, 404);
    assert.equal((await get(`${base.replace('/callback', '/favicon.ico')}`)).status, 404);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'none of those ended the wait');

    const ok = await get(`${base}?code=the-real-code&state=${STATE}`);
    assert.equal(ok.status, 200);
    assert.match(ok.body, /You can close this tab/);
    assert.equal(ok.headers['cache-control'], 'no-store');
    assert.deepEqual(await waiting, { kind: 'code', code: 'the-real-code' });
    // Exactly one: a second request with the right state finds nobody listening.
    await assert.rejects(get(`${base}?code=late&state=${STATE}`), /ECONNREFUSED/);
  });

  test('an error redirect (access_denied) with the state ends the wait as an error', async () => {
    const lb = await startLoopback();
    const waiting = lb.wait(STATE, 10_000);
    const r = await get(`${lb.redirectUri}?error=access_denied&state=${STATE}`);
    assert.equal(r.status, 200);
    assert.match(r.body, /did not sign you in/);
    assert.deepEqual(await waiting, { kind: 'error', error: 'access_denied', description: '' });
  });

  test("the flow's expiry closes the listener: the wait ends with nothing", async () => {
    const lb = await startLoopback();
    const t0 = Date.now();
    assert.equal(await lb.wait(STATE, 200), undefined);
    assert.ok(Date.now() - t0 >= 190);
    await assert.rejects(get(`${lb.redirectUri}?code=c&state=${STATE}`), /ECONNREFUSED/);
  });

  test('before the state is known, even the right-looking request is not taken', async () => {
    const lb = await startLoopback();
    try {
      assert.equal((await get(`${lb.redirectUri}?code=c&state=${STATE}`)).status, 404);
    } finally {
      await lb.close();
    }
  });

  test('close() ends a wait at once', async () => {
    const lb = await startLoopback();
    const waiting = lb.wait(STATE, 60_000);
    await lb.close();
    assert.equal(await waiting, undefined);
  });
});
