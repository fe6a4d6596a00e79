/**
 * TCP services and clients for tests of TCP gateways (`latchkey connect`
 * through nginx stream or HAProxy mode tcp).
 */
import { connect, createServer, type Socket } from 'node:net';
import type { Hooks } from './gateways.js';

/** The TCP service behind the gateway: answers every line with "echo: line". */
export async function echoService(t: Hooks): Promise<number> {
  const s = createServer((c) => {
    c.on('error', () => undefined);
    let buf = '';
    c.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        c.write(`echo: ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => s.close(r)));
  return (s.address() as { port: number }).port;
}

/** A line-oriented client of the forwarder. */
export async function lineClient(port: number): Promise<{ ask: (line: string) => Promise<string>; closed: Promise<void>; sock: Socket }> {
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  let buf = '';
  const waiters: ((l: string) => void)[] = [];
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  sock.on('error', () => undefined);
  sock.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiters.shift()?.(l);
    }
  });
  return {
    sock,
    closed,
    ask: (line) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer to "${line}" within 10 s`)), 10_000);
        void closed.then(() => reject(new Error(`connection closed before an answer to "${line}"`)));
        waiters.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
        sock.write(`${line}\n`);
      }),
  };
}

/** What one fresh connection through the forwarder gets: the echo, or closed without one. */
export async function tryOnce(port: number): Promise<string | 'closed'> {
  const c = await lineClient(port);
  try {
    return await c.ask('ping');
  } catch {
    return 'closed';
  } finally {
    c.sock.destroy();
  }
}
