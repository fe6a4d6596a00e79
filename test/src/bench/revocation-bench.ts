/**
 * `pnpm bench:revocation`: revocation latency on this machine (issue 5).
 * From `latchkey-server devices revoke ID` returning (t0) to
 *   (a) the device's agent told: a real `latchkey run`, its control channel
 *       connected, prints "THIS DEVICE HAS BEEN REVOKED" (after deleting its
 *       key and certificate; timestamped here when read from its stderr pipe)
 *       and exits 3;
 *   (b) real nginx refusing a new TLS connection with the device's
 *       certificate (`gateway sync --reload "nginx … -s reload"`);
 *   (c) real HAProxy refusing it (`gateway sync --haproxy-socket`).
 * All on 127.0.0.1: latchkey-server (SQLite), nginx and HAProxy from
 * `gateway config … --out`, an echo app behind them, two long-running
 * `gateway sync`. Per revocation: a device enrolled by the real agent (file
 * keystore), `latchkey run` connected, nginx and HAProxy both answering 200
 * for its certificate (the app sees its device id), then the three paths are
 * watched at once while the revocation happens.
 *
 * Gateways are probed continuously, each with sequential fresh TLS
 * connections (a new handshake each, no session offered) a few ms apart.
 * "Refusing" is stable refusal: the first refusal of the final run of
 * refusals, which must hold for BENCH_STABLE_K probes and BENCH_SETTLE_MS;
 * a 200 after a first refusal (an nginx worker of the old generation) is
 * counted and reported. A time is when the client saw the answer.
 *
 * Environment: BENCH_REVOCATIONS (default 50), BENCH_TIMEOUT (seconds for the
 * whole run, default 900), BENCH_PROBE_GAP_MS (default 2), BENCH_STABLE_K
 * (default 5), BENCH_SETTLE_MS (default 250), BENCH_VERBOSE=1 (a line per
 * revocation). Prints figures; no pass/fail on timing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import { openEventStream } from '../../../server/dist/gateway/gateway-sync-node.js';
import { echoUpstream, gatewayConfig, sleep, startHaproxy, startNginx, type Hooks } from '../support/gateways.js';
import { AGENT_CLI, SERVER_CLI, cli, freePort, initServer, mustRun, startServer, tempDir } from '../support/processes.js';

const N = Number(process.env.BENCH_REVOCATIONS ?? 50);
const TIMEOUT_S = Number(process.env.BENCH_TIMEOUT ?? 900);
const GAP_MS = Number(process.env.BENCH_PROBE_GAP_MS ?? 2);
const STABLE_K = Math.max(3, Number(process.env.BENCH_STABLE_K ?? 5));
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 250);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
/** Per revocation: a path not there by then counts as missed (infinite latency). */
const WAIT_MS = 10_000;
const TARGET_MS = 1000;
const PASSPHRASE = 'revocation-bench-file-keystore';

// ---------------------------------------------------------------- cleanup

const cleanups: (() => unknown)[] = [];
const hooks: Hooks & { skip(msg?: string): void } = {
  after: (fn) => void cleanups.push(fn),
  skip: (msg) => {
    throw new Error(msg);
  },
};
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch {
        /* best effort */
      }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping every process this benchmark started`);
    void cleanup().then(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}
/** Children still alive at exit (an uncaught error past cleanup) get SIGKILL. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** A child whose output lines are timestamped (performance.now()) as they are read from the pipe. */
interface Watched {
  proc: ChildProcess;
  lines: { at: number; text: string }[];
  exit: Promise<{ code: number | null; at: number }>;
  log: () => string;
}
function watched(cmd: string, args: string[], env: NodeJS.ProcessEnv): Watched {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(proc);
  const lines: Watched['lines'] = [];
  for (const s of [proc.stdout!, proc.stderr!]) {
    let buf = '';
    s.on('data', (d: Buffer) => {
      const at = performance.now();
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push({ at, text: buf.slice(0, i) });
        buf = buf.slice(i + 1);
      }
    });
  }
  const exit = new Promise<{ code: number | null; at: number }>((r) =>
    proc.on('exit', (code) => {
      children.delete(proc);
      r({ code, at: performance.now() });
    }),
  );
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    await Promise.race([exit, sleep(3000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  cleanups.push(stop);
  return { proc, lines, exit, log: () => lines.map((l) => l.text).join('\n') };
}

async function waitFor(what: string, f: () => boolean, ms: number, log: () => string = () => ''): Promise<void> {
  const end = performance.now() + ms;
  while (!f()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${log()}`);
    await sleep(10);
  }
}

// ---------------------------------------------------------------- probes

type Outcome = 'ok' | 'refused' | 'other';
interface Probe {
  start: number;
  end: number;
  outcome: Outcome;
  detail: string;
}

/**
 * One new TLS connection with the device's certificate (no session offered:
 * a full handshake) and one GET. 200 with this device's id upstream: ok;
 * nginx's 400 "The SSL certificate error" or a TLS alert "certificate
 * revoked" (HAProxy): refused; anything else: other.
 */
function probe(port: number, ctx: SecureContext, deviceId: string): Promise<Probe> {
  const start = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let data = '';
    const finish = (outcome: Outcome, detail: string): void => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ start, end: performance.now(), outcome, detail });
    };
    const s = tlsConnect({ host: '127.0.0.1', port, secureContext: ctx });
    s.setTimeout(3000, () => finish('other', 'no answer within 3 s'));
    s.on('secureConnect', () => s.write('GET /probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    s.on('error', (e: Error & { code?: string }) => {
      if (/certificate revoked/i.test(e.message) || /CERTIFICATE_REVOKED/.test(e.code ?? '')) finish('refused', 'TLS alert certificate revoked');
      else finish('other', `${e.code ?? ''} ${e.message}`.trim());
    });
    s.on('close', () => {
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(data)?.[1];
      if (status === '200' && data.includes(`"x-latchkey-device-id":"${deviceId}"`)) finish('ok', '200');
      else if (status === '400' && /The SSL certificate error/.test(data)) finish('refused', '400 The SSL certificate error');
      else finish('other', status ? `HTTP ${status}` : `closed after ${data.length} bytes`);
    });
  });
}

/** Sequential probes, GAP_MS apart, until stopped. */
function prober(port: number, ctx: SecureContext, deviceId: string): { probes: Probe[]; stable(): boolean; stop(): Promise<void> } {
  const probes: Probe[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      probes.push(await probe(port, ctx, deviceId));
      await sleep(GAP_MS);
    }
  })();
  return {
    probes,
    /** The last STABLE_K or more probes were refusals, the first of them SETTLE_MS ago or more. */
    stable() {
      const run = trailingRefusals(probes);
      return run.length >= STABLE_K && performance.now() - run[0]!.end >= SETTLE_MS;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

function trailingRefusals(probes: readonly Probe[]): Probe[] {
  let i = probes.length;
  while (i > 0 && probes[i - 1]!.outcome === 'refused') i--;
  return probes.slice(i);
}

interface PathResult {
  /** Stable refusal (ms after t0), undefined: not reached. */
  stable?: number;
  first?: number;
  /** Probes that got 200 after the first refusal. */
  okAfterFirst: number;
  other: number;
  probes: number;
  baselineOk: number;
  otherDetails: string[];
}

function analyse(probes: readonly Probe[], revokeStart: number, t0: number): PathResult {
  const before = probes.filter((p) => p.end < revokeStart);
  if (before.some((p) => p.outcome !== 'ok')) throw new Error(`a probe before the revocation was not ok: ${before.find((p) => p.outcome !== 'ok')!.detail}`);
  const firstIdx = probes.findIndex((p) => p.outcome === 'refused');
  const run = trailingRefusals(probes);
  const stable = run.length >= STABLE_K ? run[0]!.end - t0 : undefined;
  const other = probes.filter((p) => p.outcome === 'other');
  return {
    ...(stable !== undefined ? { stable } : {}),
    ...(firstIdx >= 0 ? { first: probes[firstIdx]!.end - t0 } : {}),
    okAfterFirst: firstIdx >= 0 ? probes.slice(firstIdx).filter((p) => p.outcome === 'ok').length : 0,
    other: other.length,
    probes: probes.length,
    baselineOk: before.length,
    otherDetails: [...new Set(other.map((p) => p.detail))],
  };
}

// ---------------------------------------------------------------- figures

/** Nearest rank: with 50 values p99 is the largest. Missed values are Infinity. */
const quantile = (sorted: readonly number[], p: number): number => sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)] ?? NaN;
const fmt = (ms: number): string => (Number.isFinite(ms) ? `${ms.toFixed(0)} ms` : Number.isNaN(ms) ? '-' : 'missed');

function row(label: string, xs: readonly (number | undefined)[]): { label: string; p99: number; line: string } {
  const v = xs.map((x) => x ?? Infinity).sort((a, b) => a - b);
  const missed = v.filter((x) => !Number.isFinite(x)).length;
  const p99 = quantile(v, 0.99);
  const cells = [quantile(v, 0.5), quantile(v, 0.9), p99, v[v.length - 1] ?? NaN].map((x) => fmt(x).padStart(9));
  return { label, p99, line: `  ${label.padEnd(44)}${String(v.length).padStart(4)}${cells.join('')}${String(missed).padStart(8)}` };
}

function header(): string {
  return `  ${'path (ms after `devices revoke` returned)'.padEnd(44)}${'n'.padStart(4)}${['p50', 'p90', 'p99', 'max'].map((h) => h.padStart(9)).join('')}${'missed'.padStart(8)}`;
}

const version = (cmd: string, args: string[]): string => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n')[0]!.trim();
};

// ---------------------------------------------------------------- the run

interface SyncLine {
  wall: number;
  read: number;
  text: string;
}
/** `gateway sync` log lines carry their own ISO timestamp (ms). */
const syncLines = (w: Watched): SyncLine[] =>
  w.lines.flatMap((l) => {
    const m = /^(\S+Z) gateway sync: (.*)$/.exec(l.text);
    return m ? [{ wall: Date.parse(m[1]!), read: l.at, text: m[2]! }] : [];
  });

interface Sample {
  cli: number;
  revokeStart: number;
  agentLine?: number;
  agentOwnTs?: number;
  agentExit?: number;
  agentCode?: number | null;
  evCrl?: number;
  evRevocation?: number;
  nginx: PathResult;
  haproxy: PathResult;
  nginxCrlWritten?: number;
  nginxApplied?: number;
  haproxyCrlWritten?: number;
  haproxyApplied?: number;
  nginxSyncs: number;
}

async function main(): Promise<void> {
  const began = performance.now();
  const deadline = began + TIMEOUT_S * 1000;
  // Whatever happens, the run ends: BENCH_TIMEOUT plus a minute for the last revocation and the report.
  setTimeout(() => {
    console.error(`\nBENCH_TIMEOUT (${TIMEOUT_S} s) passed long ago; killing everything`);
    void cleanup().then(() => process.exit(1));
  }, (TIMEOUT_S + 60) * 1000).unref();
  for (const tool of ['nginx', 'haproxy']) if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is not installed (apt-get install ${tool})`);

  const c = cpus();
  console.log(`latchkey bench:revocation — node ${process.version}, ${c[0]?.model ?? 'cpu'} (${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB); ${version('nginx', ['-v'])}; ${version('haproxy', ['-v'])}`);
  console.log('everything on this machine, 127.0.0.1: latchkey-server (SQLite), nginx, HAProxy, echo app, 2 × gateway sync, the agent, the probes');

  const { dataDir, port, fingerprint } = await initServer(hooks, {});
  const server = await startServer(hooks, dataDir, port);
  const work = tempDir(hooks, 'latchkey-revocation-bench-');
  const rootCa = join(dataDir, 'root.crt.pem');
  const json = async <T>(args: string[]): Promise<T> => JSON.parse((await mustRun(process.execPath, [SERVER_CLI, ...args, '--data-dir', dataDir, '--json'])).stdout) as T;
  const gwToken = async (name: string): Promise<string> => (await json<{ token: string }>(['gateway', 'token', 'create', '--name', name])).token;

  const upstream = await echoUpstream(hooks);
  const nginxPort = await freePort();
  const haproxyPort = await freePort();
  const nginxDir = join(work, 'nginx');
  const haproxyDir = join(work, 'haproxy');
  for (const [kind, dir, p] of [['nginx', nginxDir, nginxPort], ['haproxy', haproxyDir, haproxyPort]] as const) {
    const r = await gatewayConfig({ dataDir, kind, listenPort: p, upstreamPort: upstream.port, out: dir });
    if (r.code !== 0) throw new Error(`gateway config ${kind}: ${r.stderr}`);
  }
  const nginx = await startNginx(hooks, nginxDir, nginxPort);
  const haproxy = await startHaproxy(hooks, haproxyDir, haproxyPort);

  const sync = (crlFile: string, how: string[], token: string): Watched =>
    watched(process.execPath, [SERVER_CLI, 'gateway', 'sync', '--server', server.url, '--ca-file', rootCa, '--crl-file', crlFile, ...how], { LATCHKEY_GATEWAY_TOKEN: token });
  const nginxCrl = join(nginxDir, 'crl.pem');
  const haproxyCrl = join(haproxyDir, 'crl.pem');
  const nginxSync = sync(nginxCrl, ['--reload', nginx.reload], await gwToken('bench-nginx'));
  const haproxySync = sync(haproxyCrl, ['--haproxy-socket', haproxy.socket], await gwToken('bench-haproxy'));
  for (const [name, s] of [['nginx', nginxSync], ['HAProxy', haproxySync]] as const) {
    await waitFor(`the ${name} gateway sync to connect and sync`, () => /event stream connected/.test(s.log()) && /synced CRLs/.test(s.log()), 20_000, s.log);
  }

  // The bench's own subscriber on /v1/events: when the server's events go out.
  const events: { at: number; type: string; deviceId?: string }[] = [];
  const observerToken = await gwToken('bench-observer');
  let observerOpen = false;
  const stream = openEventStream({ server: server.url, token: observerToken, ca: readFileSync(rootCa, 'utf8') }, {
    onOpen() {
      observerOpen = true;
      stream.subscribe(undefined);
    },
    onEvent(e) {
      events.push({ at: performance.now(), type: e.type, ...(e.type === 'revocation' ? { deviceId: e.deviceId } : {}) });
    },
    onClose() {
      observerOpen = false;
    },
  });
  cleanups.push(() => stream.close());
  await waitFor('the observer event stream', () => observerOpen, 10_000);

  const token = (await json<{ token: string }>(['token', 'create', '--uses', String(N + 10)])).token;
  const agentEnv = { LATCHKEY_KEY_PASSPHRASE: PASSPHRASE };
  console.log(`${N} revocations, one device and one \`latchkey run\` each; probes: sequential new TLS connections ${GAP_MS} ms apart per gateway; stable = ≥${STABLE_K} refusals in a row and ≥${SETTLE_MS} ms, nothing but refusals after\n`);

  const samples: Sample[] = [];
  let revoked = 0;
  let nginxReloads = 0;
  for (let i = 0; i < N; i++) {
    if (performance.now() > deadline - 20_000) {
      console.log(`BENCH_TIMEOUT (${TIMEOUT_S} s): stopping after ${i} revocations`);
      break;
    }
    // A device, enrolled by the real agent, its control channel connected.
    const stateDir = join(work, `agent-${i}`);
    mkdirSync(stateDir, { recursive: true });
    const agentCli = (args: string[]) => mustRun(process.execPath, [AGENT_CLI, '--state-dir', stateDir, ...args], { env: agentEnv });
    await agentCli(['enroll', '--server', server.url, '--token', token, '--ca-fingerprint', fingerprint, '--keystore', 'file']);
    const st = JSON.parse((await agentCli(['status', '--json'])).stdout) as { deviceId: string; serial: string };
    const certFile = join(stateDir, 'export.crt.pem');
    const chainFile = join(stateDir, 'export.chain.pem');
    await agentCli(['export', '--cert', certFile, '--chain', chainFile]);
    const certPem = readFileSync(certFile, 'utf8');
    const keys = readdirSync(join(stateDir, 'keys')).filter((n) => n.endsWith('.key.pem'));
    if (keys.length !== 1) throw new Error(`expected one key in ${stateDir}/keys, found ${keys.length}`);
    const key = createPrivateKey({ key: readFileSync(join(stateDir, 'keys', keys[0]!), 'utf8'), passphrase: PASSPHRASE });
    const x = new X509Certificate(certPem);
    if (!x.checkPrivateKey(key)) throw new Error('the exported certificate is not for the key in the file keystore');
    if (BigInt(`0x${x.serialNumber}`) !== BigInt(`0x${st.serial}`)) throw new Error(`exported serial ${x.serialNumber} is not the agent's ${st.serial}`);
    const ctx = createSecureContext({ cert: certPem, key: key.export({ format: 'pem', type: 'pkcs8' }), ca: readFileSync(rootCa, 'utf8') });

    const agent = watched(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'run'], agentEnv);
    await waitFor('the agent control channel', () => /control channel connected/.test(agent.log()), 20_000, agent.log);

    // Both gateways let this certificate through (and the app sees this device), probed without pause from now on.
    const pn = prober(nginxPort, ctx, st.deviceId);
    const ph = prober(haproxyPort, ctx, st.deviceId);
    const okCount = (p: Probe[]): number => p.filter((q) => q.outcome === 'ok').length;
    await waitFor('200 from both gateways for the new device', () => okCount(pn.probes) >= 3 && okCount(ph.probes) >= 3, 10_000, () => JSON.stringify([pn.probes.slice(-1), ph.probes.slice(-1)]));

    const evFrom = events.length;
    const nginxSyncFrom = syncLines(nginxSync).length;
    const haproxySyncFrom = syncLines(haproxySync).length;
    const revokeStart = performance.now();
    const rv = await cli(['devices', 'revoke', st.deviceId, '--reason', 'keyCompromise', '--data-dir', dataDir]);
    const t0 = performance.now();
    const wall0 = Date.now();
    if (rv.code !== 0) throw new Error(`devices revoke: ${rv.stderr}`);
    revoked++;

    const agentLine = (): { at: number; text: string } | undefined => agent.lines.find((l) => /THIS DEVICE HAS BEEN REVOKED/.test(l.text));
    let agentExit: { code: number | null; at: number } | undefined;
    void agent.exit.then((e) => (agentExit = e));
    const synced = (w: Watched, from: number): SyncLine | undefined => syncLines(w).slice(from).find((l) => new RegExp(`; ${revoked} revoked serial`).test(l.text) && /^synced CRLs/.test(l.text));
    const handled = (w: Watched, from: number): boolean => syncLines(w).slice(from).some((l) => l.text.includes(`revocation of ${st.deviceId}`));
    await waitFor('all three paths', () => !!agentExit && pn.stable() && ph.stable() && handled(nginxSync, nginxSyncFrom) && handled(haproxySync, haproxySyncFrom), WAIT_MS).catch(() => undefined);
    await Promise.all([pn.stop(), ph.stop()]);
    if (!agentExit) agent.proc.kill('SIGKILL');

    const line = agentLine();
    const ownTs = line ? Date.parse(/^(\S+Z) /.exec(line.text)?.[1] ?? '') : NaN;
    const ev = events.slice(evFrom);
    const nSynced = synced(nginxSync, nginxSyncFrom);
    const hSynced = synced(haproxySync, haproxySyncFrom);
    const mtime = (f: string): number => statSync(f).mtimeMs - wall0;
    const nginxSyncs = syncLines(nginxSync).slice(nginxSyncFrom).filter((l) => /^synced CRLs/.test(l.text)).length;
    nginxReloads += nginxSyncs;
    const s: Sample = {
      cli: t0 - revokeStart,
      revokeStart: revokeStart - t0,
      ...(line ? { agentLine: line.at - t0 } : {}),
      ...(Number.isFinite(ownTs) ? { agentOwnTs: ownTs - wall0 } : {}),
      ...(agentExit ? { agentExit: agentExit.at - t0, agentCode: agentExit.code } : {}),
      ...(ev.find((e) => e.type === 'crl-updated') ? { evCrl: ev.find((e) => e.type === 'crl-updated')!.at - t0 } : {}),
      ...(ev.find((e) => e.type === 'revocation' && e.deviceId === st.deviceId) ? { evRevocation: ev.find((e) => e.type === 'revocation' && e.deviceId === st.deviceId)!.at - t0 } : {}),
      nginx: analyse(pn.probes, revokeStart, t0),
      haproxy: analyse(ph.probes, revokeStart, t0),
      ...(nSynced ? { nginxCrlWritten: mtime(nginxCrl), nginxApplied: nSynced.wall - wall0 } : {}),
      ...(hSynced ? { haproxyCrlWritten: mtime(haproxyCrl), haproxyApplied: hSynced.wall - wall0 } : {}),
      nginxSyncs,
    };
    samples.push(s);
    if (VERBOSE) {
      const f = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(0));
      console.log(
        `  #${String(i + 1).padStart(2)} cli ${f(s.cli)} | ev crl ${f(s.evCrl)} rev ${f(s.evRevocation)} | agent line ${f(s.agentLine)} exit ${f(s.agentExit)} (${s.agentCode}) | nginx crl ${f(s.nginxCrlWritten)} applied ${f(s.nginxApplied)} first ${f(s.nginx.first)} stable ${f(s.nginx.stable)} (200 after: ${s.nginx.okAfterFirst}, other ${s.nginx.other}, ${s.nginx.probes} probes) | haproxy crl ${f(s.haproxyCrlWritten)} applied ${f(s.haproxyApplied)} first ${f(s.haproxy.first)} stable ${f(s.haproxy.stable)} (other ${s.haproxy.other})`,
      );
    }
  }

  report(samples, performance.now() - began, nginxReloads);
  for (const [name, w] of [['nginx', nginxSync], ['HAProxy', haproxySync]] as const) {
    const failed = syncLines(w).filter((l) => /CRL sync failed|event stream (closed|unavailable)/.test(l.text));
    const unchanged = syncLines(w).filter((l) => /^CRLs unchanged .*revocation of/.test(l.text)).length;
    const skipped = syncLines(w).filter((l) => /revocation of .*: already in the applied CRL/.test(l.text)).length;
    console.log(`  ${name} gateway sync: ${failed.length} failed syncs or stream drops${failed.length ? ` (first: ${failed[0]!.text})` : ''}; ${skipped} revocation events already in the applied CRL (no fetch: the crl-updated event came first); ${unchanged} fetches after a revocation event found the CRL unchanged`);
  }
  if (server.proc.exitCode !== null) console.log(`\n(the server exited early: ${server.log()})`);
}

function report(samples: Sample[], elapsed: number, nginxReloads: number): void {
  const n = samples.length;
  const col = <K extends keyof Sample>(k: K): (Sample[K] | undefined)[] => samples.map((s) => s[k]);
  const told = samples.map((s) => s.agentLine);
  const ngx = samples.map((s) => s.nginx.stable);
  const hap = samples.map((s) => s.haproxy.stable);
  const all = samples.map((s) => (s.agentLine === undefined || s.nginx.stable === undefined || s.haproxy.stable === undefined ? undefined : Math.max(s.agentLine, s.nginx.stable, s.haproxy.stable)));
  const paths = [row('(a) agent told: its "REVOKED" line read', told), row('(b) nginx refusing (stable)', ngx), row('(c) HAProxy refusing (stable)', hap)];
  console.log(`Revocation latency, ${n} revocations in ${(elapsed / 1000).toFixed(0)} s${n < 50 ? ' (FEWER THAN 50: not the reported figure)' : ''}`);
  console.log(header());
  for (const r of paths) console.log(r.line);
  console.log(row('all three done (max of a, b, c)', all).line);
  console.log(row('    the same, from `devices revoke` started', samples.map((s, i) => (all[i] === undefined ? undefined : all[i]! - s.revokeStart))).line);
  console.log(row('    agent exited (code 3)', col('agentExit')).line);
  console.log(row('    nginx first refusal', samples.map((s) => s.nginx.first)).line);
  console.log(row('    HAProxy first refusal', samples.map((s) => s.haproxy.first)).line);

  console.log('  (a) is the agent\'s stderr line "THIS DEVICE HAS BEEN REVOKED" (printed once it has deleted its key and certificate), timestamped here when read from the pipe; its exit (code 3) is the row below it');
  const codes = samples.map((s) => s.agentCode);
  console.log(`  agent exit codes: ${[...new Set(codes)].map((c) => `${c ?? 'none'} ×${codes.filter((x) => x === c).length}`).join(', ')}`);
  for (const [name, k] of [['nginx', 'nginx'], ['HAProxy', 'haproxy']] as const) {
    const flaps = samples.filter((s) => s[k].okAfterFirst > 0);
    const probes = samples.reduce((a, s) => a + s[k].probes, 0);
    const other = samples.reduce((a, s) => a + s[k].other, 0);
    const details = [...new Set(samples.flatMap((s) => s[k].otherDetails))];
    console.log(
      `  ${name}: a 200 after the first refusal in ${flaps.length}/${n} revocations (${flaps.reduce((a, s) => a + s[k].okAfterFirst, 0)} probes); ${probes} probes in all, ${other} neither 200 nor a refusal${details.length ? ` (${details.slice(0, 3).join('; ')})` : ''}; ${(probes / n).toFixed(0)} probes per revocation`,
    );
  }
  const verdicts = paths.map((r) => `${r.label.split(' ')[0]} ${fmt(r.p99)} ${r.p99 < TARGET_MS ? 'met' : 'NOT met'}`);
  console.log(`\nTarget (issue 5): p99 < ${TARGET_MS} ms on every path — ${paths.every((r) => r.p99 < TARGET_MS) && n >= 50 ? 'MET' : 'NOT MET'}: ${verdicts.join('; ')}${n < 50 ? ' (fewer than 50 revocations)' : ''}`);

  console.log('\nWhere the time goes (ms relative to `devices revoke` returning; negative = before it returned)');
  console.log(header().replace('path (ms after `devices revoke` returned)', 'stage'.padEnd(41)));
  const stages: [string, (s: Sample) => number | undefined][] = [
    ['`devices revoke` started (CLI run, -)', (s) => s.revokeStart],
    ['event crl-updated at a /v1/events client', (s) => s.evCrl],
    ['event revocation at a /v1/events client', (s) => s.evRevocation],
    ['agent: logged REVOKED (its own clock)', (s) => s.agentOwnTs],
    ['agent: REVOKED line read from the pipe', (s) => s.agentLine],
    ['nginx sync: CRL file written (mtime)', (s) => s.nginxCrlWritten],
    ['nginx sync: `nginx -s reload` returned', (s) => s.nginxApplied],
    ['nginx: first refusal', (s) => s.nginx.first],
    ['nginx: stable refusal', (s) => s.nginx.stable],
    ['HAProxy sync: CRL file written (mtime)', (s) => s.haproxyCrlWritten],
    ['HAProxy sync: set+commit ssl crl-file done', (s) => s.haproxyApplied],
    ['HAProxy: first refusal', (s) => s.haproxy.first],
    ['HAProxy: stable refusal', (s) => s.haproxy.stable],
  ];
  for (const [label, f] of stages) console.log(row(label, samples.map(f)).line);
  const diff = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : b - a);
  console.log(row('nginx: reload returned → first refusal (Δ)', samples.map((s) => diff(s.nginxApplied, s.nginx.first))).line);
  console.log(row('HAProxy: commit done → first refusal (Δ)', samples.map((s) => diff(s.haproxyApplied, s.haproxy.first))).line);
  console.log(`  nginx reloads by the sync: ${nginxReloads} for ${n} revocations`);
}

try {
  await main();
} catch (e) {
  console.error(`bench:revocation failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
