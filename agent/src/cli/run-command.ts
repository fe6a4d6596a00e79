/**
 * `latchkey run`: the daemon's wiring. The renew loop (renew/daemon.ts) and
 * the control channel, as the config says; `latchkey status` shows the
 * channel state this process records.
 */
import type { AgentConfig } from '../config/agent-config.js';
import { startControlChannel } from '../channel/control-channel.js';
import { startControlChannelInChild } from '../channel/channel-child.js';
import { collectFacts } from '../facts.js';
import { createKicks, runDaemon, systemClock } from '../renew/daemon.js';
import { renewInChild } from '../renew/renew-child.js';
import { forgetRevokedIdentity } from '../renew/revoked.js';
import { readIdentity, updateStatusFile } from '../state/identity.js';

export async function runCommand(cfg: AgentConfig, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<number> {
  const { stateDir } = cfg;
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  process.once('SIGTERM', () => stop());
  process.once('SIGINT', () => stop());
  let factsCache: Awaited<ReturnType<typeof collectFacts>> | undefined;
  const facts = async () => (factsCache ??= await collectFacts());
  const backoff = cfg.timing.backoffCapMs ? { backoff: { baseMs: 500, capMs: cfg.timing.backoffCapMs } } : {};
  const id = await readIdentity(stateDir);
  const kicks = createKicks();
  // pkcs11: the channel runs in a child process, restarted after each renewal (see channel-child.ts).
  const channel =
    id && cfg.controlChannel
      ? (id.keystore.kind === 'pkcs11' ? startControlChannelInChild : startControlChannel)({
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
      ...(id?.keystore.kind === 'pkcs11' ? { renew: (_ctx, force) => renewInChild(stateDir, env, force) } : {}),
      stateDir,
      env,
      clock: systemClock,
      facts,
      log,
      stopped,
      kicks,
      onRenewed: () => channel?.reconnect(),
      onRevoked: (reason, at) => forgetRevokedIdentity(stateDir, env, reason, at),
      ...(cfg.timing.runSliceMs ? { sliceMs: cfg.timing.runSliceMs } : {}),
      ...backoff,
    });
  } finally {
    clearInterval(channelWatch);
    await channel?.stop();
    if (channel) await updateStatusFile(stateDir, { channel: undefined }).catch(() => undefined);
  }
}
