/**
 * The loopback redirect listener of a browser sign-in (RFC 8252 §7.3):
 * HTTP on 127.0.0.1, a port the system picks, path `/callback`. It takes
 * exactly one request whose `state` is this sign-in's; any other request is
 * answered 400 (or 404) and ignored, so another local process cannot slip
 * in a code of its own or end the wait. Closed after that request, on
 * timeout, or by `close()`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CALLBACK_PATH, type Callback, parseCallback } from './sso-fns.js';

export type CallbackResult = Extract<Callback, { kind: 'code' } | { kind: 'error' }>;

export interface Loopback {
  /** `http://127.0.0.1:PORT/callback`, for the server's `redirectUri`. */
  redirectUri: string;
  /** Waits for the one request that carries `state`; undefined when `timeoutMs` passed first (or close() was called). */
  wait(state: string, timeoutMs: number): Promise<CallbackResult | undefined>;
  close(): Promise<void>;
}

const PAGE = (title: string, body: string): string =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body style="font-family:sans-serif;margin:3em"><h1>${title}</h1><p>${body}</p></body></html>\n`;

function answer(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'referrer-policy': 'no-referrer',
    connection: 'close',
  });
  res.end(html);
}

export async function startLoopback(): Promise<Loopback> {
  let expected: string | undefined;
  let settle: ((r: CallbackResult | undefined) => void) | undefined;
  let done = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const c: Callback = req.method === 'GET' && expected !== undefined && !done ? parseCallback(req.url ?? '/', expected) : { kind: 'not-found' };
    switch (c.kind) {
      case 'code':
      case 'error':
        done = true;
        // Settled once the page is written: closing the listener drops its sockets.
        res.once('close', () => settle?.(c));
        answer(res, 200, c.kind === 'code' ? PAGE('Signed in', 'You can close this tab and go back to the terminal.') : PAGE('Sign-in not completed', 'The identity provider did not sign you in. You can close this tab; the terminal says what to do next.'));
        return;
      case 'bad-state':
      case 'malformed':
        answer(res, 400, PAGE('Not this sign-in', 'This request does not belong to the sign-in in progress and was ignored.'));
        return;
      case 'not-found':
        answer(res, 404, PAGE('Not found', 'Nothing here.'));
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.maxHeadersCount = 50;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    if (closing) return closing;
    closing = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    settle?.(undefined);
    return closing;
  };
  return {
    redirectUri: `http://127.0.0.1:${port}${CALLBACK_PATH}`,
    wait(state, timeoutMs) {
      expected = state;
      return new Promise<CallbackResult | undefined>((resolve) => {
        const timer = setTimeout(() => settle?.(undefined), Math.max(0, timeoutMs));
        settle = (r) => {
          settle = undefined;
          clearTimeout(timer);
          resolve(r);
          void close();
        };
      });
    },
    close,
  };
}
