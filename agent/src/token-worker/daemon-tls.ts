/**
 * What `latchkey run` uses to present the device key over TLS: in its own
 * process, or in token workers for keys OpenSSL must load fresh
 * (tlsNeedsFreshProcess). The daemon asks here and never looks at the kind.
 */
import { type ControlChannel, type ControlChannelOptions, startControlChannel } from '../channel/control-channel.js';
import { type KeystoreKind, tlsNeedsFreshProcess } from '../keystore/keystore.js';
import type { DaemonOptions } from '../renew/daemon.js';
import { startControlChannelInWorker } from './channel-in-worker.js';
import { renewInWorker } from './renew-in-worker.js';

export interface DaemonTls {
  startControlChannel(o: ControlChannelOptions): ControlChannel;
  /** Set when renewals must not run in the daemon's process. */
  renew?: DaemonOptions['renew'];
}

export function daemonTls(kind: KeystoreKind | undefined, o: { stateDir: string; env: NodeJS.ProcessEnv; log: (line: string) => void; argv?: string[] }): DaemonTls {
  if (!kind || !tlsNeedsFreshProcess(kind)) return { startControlChannel };
  const argv = o.argv ? { argv: o.argv } : {};
  return {
    startControlChannel: (c) => startControlChannelInWorker({ ...c, ...argv }),
    renew: (_ctx, force) => renewInWorker({ stateDir: o.stateDir, env: o.env, log: o.log, ...argv }, force),
  };
}
