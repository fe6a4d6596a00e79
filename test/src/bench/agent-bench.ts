/**
 * `pnpm bench:agent`: the agent's figures on this machine.
 *   - enrollment and forced renewal, end to end (a `latchkey` process each,
 *     start-up included) and as the agent itself measures enrollment, per
 *     keystore: file, os (gnome-keyring), pkcs11 on SoftHSM2 and on a
 *     software TPM, and on that TPM with `--attest tpm` (TCG credential
 *     activation + TPM2_Certify, issue 14) against a server trusting its
 *     swtpm_localca (each where available);
 *   - `latchkey --version` start-up: node + dist, and the single executable
 *     if it was packaged (agent/dist-bin/latchkey-linux-x64);
 *   - the server's CPU per enrollment and per renewal (utime + stime of its
 *     process from /proc while the agent runs, less its idle rate measured
 *     over 3 s before; 10 ms resolution, so averaged over the runs);
 *   - idle `latchkey run`: RSS and CPU over BENCH_IDLE_SECONDS (default 60).
 * Environment: BENCH_RUNS (default 5), BENCH_IDLE_SECONDS.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKeyring } from '../../../agent/test-support/dist/keyring-fixture.js';
import { softhsmToken, swtpmToken, type Pkcs11TestToken } from '../../../agent/test-support/dist/pkcs11-fixtures.js';
import { swtpmTokenWithEkCert } from '../../../agent/test-support/dist/tpm-fixtures.js';
import { AGENT_CLI, ROOT, cli, freePort, run } from '../support/processes.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const IDLE = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const cleanups: (() => unknown)[] = [];
const hooks = { after: (fn: () => unknown) => void cleanups.push(fn) };
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function server(config: Record<string, unknown> = {}): Promise<{ url: string; dataDir: string; fingerprint: string; pid: number; stop: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-agent-bench-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const port = await freePort();
  const init = await cli(['init', '--data-dir', dataDir, '--org', 'Bench Corp', '--url', `https://127.0.0.1:${port}`, '--listen', `127.0.0.1:${port}`, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  const cfgFile = join(dataDir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({ ...(JSON.parse(readFileSync(cfgFile, 'utf8')) as object), ...config }));
  const p = spawn(process.execPath, [join(ROOT, 'server/dist/cli.js'), 'start', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const on = (d: Buffer) => {
      log += d.toString();
      if (/listening on/.test(log)) resolve();
    };
    p.stdout.on('data', on);
    p.stderr.on('data', on);
    p.on('exit', () => reject(new Error(log)));
  });
  cleanups.push(() => p.kill('SIGKILL'));
  return { url: `https://127.0.0.1:${port}`, dataDir, fingerprint: (JSON.parse(init.stdout) as { rootFingerprint: string }).rootFingerprint, pid: p.pid!, stop: () => p.kill() };
}

interface Target {
  label: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Another server and token than the plain targets' (the attested target: a server trusting swtpm_localca, a tpm group). */
  server?: { url: string; fingerprint: string; token: string; pid: number };
}

/** The server's CPU while nobody calls it (its timers), per ms of wall time, over 3 s. */
async function idleCpuPerMs(pid: number): Promise<number> {
  const c0 = cpuMs(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 3000));
  return (cpuMs(pid) - c0) / (performance.now() - t0);
}

/** CPU time (user + system, ms) a process has used so far, from /proc (10 ms resolution). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/**
 * `--attest tpm` on a software TPM with EK certificates (tpm2-abrmd +
 * tpm2-pkcs11), against a server that trusts its swtpm_localca and a group
 * that requires attestation: the same token type as the plain software TPM
 * target, so the two lines compare the attestation's cost.
 */
async function attestedTarget(): Promise<Target | string> {
  const tk = await swtpmTokenWithEkCert(hooks);
  if (typeof tk === 'string') return `pkcs11 + --attest tpm: ${tk}`;
  const roots = mkdtempSync(join(tmpdir(), 'latchkey-agent-bench-roots-'));
  cleanups.push(() => rmSync(roots, { recursive: true, force: true }));
  mkdirSync(join(roots, 'ca'));
  copyFileSync(tk.rootCaPem, join(roots, 'ca', 'root.pem'));
  copyFileSync(tk.issuerCaPem, join(roots, 'ca', 'issuer.pem'));
  let srv: Awaited<ReturnType<typeof server>>;
  try {
    srv = await server({ attestation: { ekRootsDir: join(roots, 'ca') } });
  } catch (e) {
    return `pkcs11 + --attest tpm: this server does not verify attestations (${(e as Error).message.trim().split('\n').at(-1)})`;
  }
  const set = await cli(['groups', 'set', 'attested', '--lifetime', '24h', '--attestation', 'tpm', '--data-dir', srv.dataDir]);
  if (set.code !== 0) return `pkcs11 + --attest tpm: ${set.stderr.trim()}`;
  const tok = await cli(['token', 'create', '--uses', '1000', '--group', 'attested', '--data-dir', srv.dataDir, '--json']);
  return {
    label: 'pkcs11 TPM, --attest tpm',
    args: ['--keystore', 'pkcs11', '--pkcs11-module', tk.module, '--pkcs11-token', tk.tokenLabel, '--attest', 'tpm'],
    env: { ...tk.env, LATCHKEY_PKCS11_PIN: tk.pin },
    server: { url: srv.url, fingerprint: srv.fingerprint, pid: srv.pid, token: (JSON.parse(tok.stdout) as { token: string }).token },
  };
}

async function targets(): Promise<(Target | string)[]> {
  const pk = (label: string, t: Pkcs11TestToken | string): Target | string =>
    typeof t === 'string' ? `${label}: ${t}` : { label, args: ['--keystore', 'pkcs11', '--pkcs11-module', t.module, '--pkcs11-token', t.tokenLabel], env: { ...t.env, LATCHKEY_PKCS11_PIN: t.pin } };
  const k = await startKeyring(hooks);
  return [
    { label: 'file', args: ['--keystore', 'file'], env: {} },
    typeof k === 'string' ? `os: ${k}` : { label: 'os (gnome-keyring)', args: ['--keystore', 'os'], env: { DBUS_SESSION_BUS_ADDRESS: k.address } },
    pk('pkcs11 (SoftHSM2)', await softhsmToken(hooks)),
    pk('pkcs11 (software TPM)', await swtpmToken(hooks)),
    await attestedTarget(),
  ];
}

try {
  console.log(`latchkey bench:agent — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} cores); server and agent on this machine`);
  console.log(`${RUNS} runs per figure, medians\n`);
  const srv = await server();
  const tok = await cli(['token', 'create', '--uses', '1000', '--data-dir', srv.dataDir, '--json']);
  const token = (JSON.parse(tok.stdout) as { token: string }).token;
  console.log('Enrollment and renewal, per keystore (a `latchkey` process each)');
  let idleState: string | undefined;
  for (const tg of await targets()) {
    if (typeof tg === 'string') {
      console.log(`  ${tg.padEnd(24)} skipped`);
      continue;
    }
    const enroll: number[] = [];
    const inAgent: number[] = [];
    const renew: number[] = [];
    // The server's CPU during each operation (its background timers included), summed over the runs.
    let serverEnrollCpu = 0;
    let serverRenewCpu = 0;
    let enrollWall = 0;
    let renewWall = 0;
    const pid = (tg.server ?? srv).pid;
    const idleRate = await idleCpuPerMs(pid);
    for (let i = 0; i < RUNS; i++) {
      const stateDir = join(mkdtempSync(join(tmpdir(), 'latchkey-agent-bench-')), 'state');
      cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
      const env = { ...process.env, ...tg.env };
      const via = tg.server ?? { ...srv, token };
      let c0 = cpuMs(via.pid);
      let t0 = performance.now();
      const e = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'enroll', '--server', via.url, '--token', via.token, '--ca-fingerprint', via.fingerprint, ...tg.args], { env });
      enroll.push(performance.now() - t0);
      serverEnrollCpu += cpuMs(via.pid) - c0;
      enrollWall += performance.now() - t0;
      if (e.code !== 0) throw new Error(`${tg.label}: ${e.stderr}`);
      inAgent.push(Number(/, (\d+) ms\)/.exec(e.stdout)?.[1] ?? NaN));
      c0 = cpuMs(via.pid);
      t0 = performance.now();
      const r = await run(process.execPath, [AGENT_CLI, '--state-dir', stateDir, 'renew', '--force'], { env });
      renew.push(performance.now() - t0);
      serverRenewCpu += cpuMs(via.pid) - c0;
      renewWall += performance.now() - t0;
      if (r.code !== 0) throw new Error(`${tg.label}: ${r.stderr}`);
      if (tg.label === 'file') idleState = stateDir;
    }
    console.log(`  ${tg.label.padEnd(24)} enroll ${median(enroll).toFixed(0).padStart(5)} ms (in the agent ${median(inAgent).toFixed(0)} ms)   renew --force ${median(renew).toFixed(0).padStart(5)} ms   server CPU per enroll ${((serverEnrollCpu - idleRate * enrollWall) / RUNS).toFixed(0)} ms, per renew ${((serverRenewCpu - idleRate * renewWall) / RUNS).toFixed(0)} ms (idle ${(idleRate * 1000).toFixed(0)} ms/s taken off)`);
  }

  console.log('\nStart-up (`latchkey --version`)');
  const startup = (argv: string[]): number => {
    const xs: number[] = [];
    for (let i = 0; i < Math.max(RUNS, 5); i++) {
      const t0 = performance.now();
      spawnSync(argv[0]!, argv.slice(1));
      xs.push(performance.now() - t0);
    }
    return median(xs);
  };
  console.log(`  node agent/dist/cli.js    ${startup([process.execPath, AGENT_CLI, '--version']).toFixed(0)} ms   (node -e 0: ${startup([process.execPath, '-e', '0']).toFixed(0)} ms)`);
  const bin = join(ROOT, 'agent/dist-bin/latchkey-linux-x64');
  if (existsSync(bin)) console.log(`  single executable         ${startup([bin, '--version']).toFixed(0)} ms   (${(statSync(bin).size / 2 ** 20).toFixed(1)} MiB)`);
  else console.log('  single executable         not packaged (pnpm --filter @latchkey/agent package)');

  if (idleState) {
    console.log(`\nIdle \`latchkey run\` (file keystore, 24 h certificate) over ${IDLE} s`);
    const d = spawn(process.execPath, [AGENT_CLI, '--state-dir', idleState, 'run'], { stdio: 'ignore' });
    cleanups.push(() => d.kill('SIGKILL'));
    // Start-up (JIT, first GC) settles first.
    await new Promise((r) => setTimeout(r, 10_000));
    const stat = (): number => {
      const f = readFileSync(`/proc/${d.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))?.[1] ?? NaN);
    const c0 = stat();
    const r0 = rss();
    let rmax = r0;
    for (let i = 0; i < IDLE; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      rmax = Math.max(rmax, rss());
    }
    const cpuMs = stat() - c0;
    console.log(`  RSS ${(r0 / 1024).toFixed(1)} MiB at start, ${(rmax / 1024).toFixed(1)} MiB max; CPU ${cpuMs} ms in ${IDLE} s (${((100 * cpuMs) / (IDLE * 1000)).toFixed(3)} %)`);
  }
} finally {
  for (const f of cleanups.reverse()) {
    try {
      await f();
    } catch {
      /* best effort */
    }
  }
}
