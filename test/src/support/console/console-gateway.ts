/**
 * nginx in front of an echo app, configured by `latchkey-server gateway
 * config nginx` and kept current by a running `gateway sync` (its CRL file
 * rewritten and nginx reloaded on each revocation), and curl presenting a
 * device's certificate to it.
 */
import { join } from 'node:path';
import { SERVER_CLI, freePort, run, tempDir, type TestCtx } from '../processes.js';
import { daemon, echoUpstream, gatewayConfig, startNginx, until, type Daemon } from '../gateways.js';
import { serverJson, type ConsoleServer } from './console-server.js';

export interface NginxGateway {
  port: number;
  /** The running `gateway sync`. */
  sync: Daemon;
  errorLog: string;
  /** curl with a device's certificate: the HTTP status ('000' when no answer) and the body. */
  curl(cred: { cert: string; key: string }): Promise<{ status: string; body: string; stderr: string }>;
}

export async function nginxGateway(t: TestCtx, s: ConsoleServer, name = 'console-e2e-nginx'): Promise<NginxGateway> {
  const dir = join(tempDir(t, 'latchkey-gw-'), 'gw');
  const port = await freePort();
  const upstream = await echoUpstream(t);
  const conf = await gatewayConfig({ dataDir: s.dataDir, kind: 'nginx', listenPort: port, upstreamPort: upstream.port, out: dir });
  if (conf.code !== 0) throw new Error(`gateway config nginx exited ${conf.code}: ${conf.stderr}`);
  const nginx = await startNginx(t, dir, port);
  const { token } = await serverJson<{ token: string }>(s, ['gateway', 'token', 'create', '--name', name]);
  const sync = daemon(t, process.execPath, [SERVER_CLI, 'gateway', 'sync', '--server', s.url, '--ca-file', join(dir, 'ca.pem'), '--crl-file', join(dir, 'crl.pem'), '--reload', nginx.reload], { ...process.env, LATCHKEY_GATEWAY_TOKEN: token });
  await until('gateway sync to sync and follow the event stream', async () => (/synced CRLs/.test(sync.log()) && /event stream connected/.test(sync.log()) ? true : undefined), 30_000).catch((e: Error) => {
    throw new Error(`${e.message}\n--- gateway sync:\n${sync.log()}`);
  });
  return {
    port,
    sync,
    errorLog: nginx.errorLog,
    async curl(cred) {
      const r = await run('curl', ['-s', '-S', '--max-time', '10', '-w', '\n%{http_code}', '--cacert', join(s.dataDir, 'root.crt.pem'), '--cert', cred.cert, '--key', cred.key, `https://127.0.0.1:${port}/hello`]);
      const i = r.stdout.lastIndexOf('\n');
      return { status: r.stdout.slice(i + 1), body: r.stdout.slice(0, Math.max(i, 0)), stderr: r.stderr };
    },
  };
}
