/**
 * One renewal in a fresh token worker: the worker loads the key identity.json
 * names now (whoever renewed last), renews, and is stopped, since the key it
 * loaded is the old one from then on. Also keeps a misbehaving token driver
 * out of the daemon.
 */
import type { RenewOutcome } from '../renew/daemon.js';
import { type TokenWorkerOptions, spawnTokenWorker } from './client.js';

export async function renewInWorker(o: Omit<TokenWorkerOptions, 'onChannel'>, force: boolean): Promise<RenewOutcome> {
  const w = spawnTokenWorker(o);
  try {
    return await w.renew(force);
  } finally {
    await w.stop();
  }
}
