/**
 * Real concurrency on one SQLite file. In one process the app has one
 * better-sqlite3 connection, so its transactions run one after another and
 * a "parallel" test cannot race. Here each worker thread opens its own
 * connection to the data dir's database (as another process would), gets
 * ready, and all start at the same instant (a shared-memory barrier); each
 * then runs its share of the work, so transactions of different connections
 * really interleave and SQLite's locking decides.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { buildCaContext, loadCaKeys } from '../ca/ca-context.js';
import { EST_PATHS } from '@latchkey/protocol';
import { FILES } from '../ca/ca-files.js';
import { loadConfig } from '../config/config-load.js';
import { openDb } from '../storage/db.js';
import { tokensRepo } from '../tokens/tokens-repo.js';
import { CLIENT_CERT_HEADER, b64, deviceCsr, openApp } from './harness.js';

export type RaceJob =
  /** `takes` transactions, each consuming one use of the token. */
  | { kind: 'consume'; tokenId: string; takes: number; now: string }
  /** `count` EST enrollments with the token, each with a new key, through the app on this connection. */
  | { kind: 'enroll'; token: string; count: number }
  /** `count` EST re-enrollments authenticated by `certDer` (base64), each with a new key. */
  | { kind: 'reenroll'; certDer: string; count: number };

export interface RaceResult {
  /** consume: how many took a use; enroll, reenroll: the HTTP status of each request. */
  consumed?: number;
  statuses?: number[];
  /** enroll, reenroll: the error code of each refusal. */
  codes?: string[];
}

interface WorkerInput {
  latchkeyRace: true;
  dataDir: string;
  job: RaceJob;
  barrier: SharedArrayBuffer;
}

/** Runs each job in its own worker thread on its own connection to `dataDir`'s SQLite file; all start together. */
export async function raceOnOneFile(dataDir: string, jobs: RaceJob[]): Promise<RaceResult[]> {
  const barrier = new SharedArrayBuffer(4);
  const go = new Int32Array(barrier);
  const workers = jobs.map((job) => new Worker(new URL(import.meta.url), { workerData: { latchkeyRace: true, dataDir, job, barrier } satisfies WorkerInput }));
  const settled = (w: Worker, want: string) =>
    new Promise<unknown>((resolve, reject) => {
      const onMessage = (m: { type: string; value?: unknown; error?: string }): void => {
        if (m.type === 'error') reject(new Error(`race worker: ${m.error}`));
        else if (m.type === want) {
          w.off('message', onMessage);
          resolve(m.value);
        }
      };
      w.on('message', onMessage);
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`race worker exited ${code} before ${want}`)));
    });
  try {
    const results = workers.map((w) => settled(w, 'result'));
    // Every connection is open and every request prepared before any starts.
    await Promise.all(workers.map((w) => settled(w, 'ready')));
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    return (await Promise.all(results)) as RaceResult[];
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

async function runWorker(input: WorkerInput): Promise<RaceResult> {
  const port = parentPort!;
  const start = (): void => {
    port.postMessage({ type: 'ready' });
    Atomics.wait(new Int32Array(input.barrier), 0, 0);
  };
  const { job, dataDir } = input;
  if (job.kind === 'consume') {
    const db = await openDb({ dataDir, log: () => undefined });
    try {
      start();
      const took = await Promise.all(Array.from({ length: job.takes }, () => db.kysely.transaction().execute((trx) => tokensRepo(trx).consume(job.tokenId, job.now))));
      return { consumed: took.filter(Boolean).length };
    } finally {
      await db.close();
    }
  }
  const config = loadConfig(dataDir, {});
  const passphrase = readFileSync(join(dataDir, FILES.passphrase), 'utf8').trim();
  const ca = buildCaContext(dataDir, config, loadCaKeys(dataDir, passphrase));
  const built = await openApp({ dataDir, ca, config, clock: () => new Date(), logs: [], logger: { level: 'silent' } });
  try {
    const csrs = await Promise.all(Array.from({ length: job.count }, async (_, i) => b64((await deviceCsr({ cn: `race-${i}` })).csr)));
    const [url, auth] = job.kind === 'enroll' ? [EST_PATHS.simpleenroll, { authorization: `Bearer ${job.token}` }] : [EST_PATHS.simplereenroll, { [CLIENT_CERT_HEADER]: job.certDer }];
    start();
    const rs = await Promise.all(csrs.map((payload) => built.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/pkcs10', ...auth }, payload })));
    return { statuses: rs.map((r) => r.statusCode), codes: rs.filter((r) => r.statusCode !== 200).map((r) => (JSON.parse(r.body) as { error?: { code?: string } }).error?.code ?? r.body.slice(0, 80)) };
  } finally {
    await built.app.close();
    await built.bus.close();
    await built.db.close();
  }
}

if (!isMainThread && (workerData as Partial<WorkerInput> | null)?.latchkeyRace) {
  runWorker(workerData as WorkerInput).then(
    (value) => parentPort!.postMessage({ type: 'result', value }),
    (e: Error) => parentPort!.postMessage({ type: 'error', error: e.stack ?? e.message }),
  );
}
