/**
 * `latchkey run`: the daemon's wiring. The renew loop (renew/daemon.ts) and
 * the control channel, as the config says; `latchkey status` shows the
 * channel state this process records.
 */
import type { AgentConfig } from '../config/agent-config.js';
import { collectFacts } from '../facts.js';
import { createKicks, runDaemon, systemClock } from '../renew/daemon.js';
import { forgetRevokedIdentity } from '../renew/revoked.js';
import { readIdentity, updateStatusFile } from '../state/identity.js';
import { daemonTls } from '../token-worker/daemon-tls.js';
import { zeroTouchEnroll } from '../zero-touch/zero-touch.js';

export async function runCommand(cfg: AgentConfig, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<number> {
  const { stateDir } = cfg;
  // Before the signal handlers: SIGTERM during the enrollment ends the process at once; the request is on disk (enroll-pending.json) for the next start.
  await zeroTouchEnroll({ cfg, env, log, ...(cfg.testHooks.backoff ? { backoff: cfg.testHooks.backoff } : {}) });
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  process.once('SIGTERM', () => stop());
  process.once('SIGINT', () => stop());
  let factsCache: Awaited<ReturnType<typeof collectFacts>> | undefined;
  const facts = async () => (factsCache ??= await collectFacts());
  const { testHooks } = cfg;
  const backoff = testHooks.backoff ? { backoff: testHooks.backoff } : {};
  const id = await readIdentity(stateDir);
  const kicks = createKicks();
  // pkcs11: renewals and the channel run in token workers (token-worker/daemon-tls.ts).
  const tls = daemonTls(id?.keystore.kind, { stateDir, env, log });
  const channel =
    id && cfg.controlChannel
      ? tls.startControlChannel({
          stateDir,
          env,
          facts,
          log,
          onRevoked: (reason, at) => kicks.fire({ type: 'revoked', reason, at }),
          onRenewNow: (reason) => kicks.fire({ type: 'renew-now', ...(reason ? { reason } : {}) }),
          onPolicy: (p) => kicks.fire({ type: 'policy', ...p }),
          ...backoff,
        })
      : undefined;
  let shown: boolean | undefined;
  const showChannel = (): void => {
    if (!channel || channel.connected === shown) return;
    shown = channel.connected;
    void updateStatusFile(stateDir, { channel: { connected: shown, since: new Date().toISOString(), pid: process.pid } }).catch(() => undefined);
  };
  const channelWatch = setInterval(showChannel, 1000);
  channelWatch.unref();
  showChannel();
  try {
    return await runDaemon({
      ...(tls.renew ? { renew: tls.renew } : {}),
      stateDir,
      env,
      clock: systemClock,
      facts,
      log,
      stopped,
      kicks,
      onRenewed: () => channel?.reconnect(),
      onRevoked: (reason, at) => forgetRevokedIdentity(stateDir, env, reason, at),
      ...(testHooks.runSliceMs ? { sliceMs: testHooks.runSliceMs } : {}),
      testHooks,
      ...backoff,
    });
  } finally {
    clearInterval(channelWatch);
    await channel?.stop();
    if (channel) await updateStatusFile(stateDir, { channel: undefined }).catch(() => undefined);
  }
}
