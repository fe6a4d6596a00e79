/**
 * One agent at a time changes the state: an exclusive lock file holding the
 * owner's pid. A lock left by a process that no longer exists (kill -9, power
 * cut) is taken over. Held only while state changes (enroll, a renewal), so
 * `latchkey renew` works next to a running `latchkey run`.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../errors.js';
import { STATE_FILES } from './paths.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export async function acquireStateLock(stateDir: string, opts: { waitMs?: number } = {}): Promise<() => Promise<void>> {
  const path = join(stateDir, STATE_FILES.lock);
  const mine = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + (opts.waitMs ?? 30_000);
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(mine);
      await fh.close();
      return async () => {
        // Only remove the lock if it is still ours.
        const now = await readFile(path, 'utf8').catch(() => '');
        if (now === mine) await rm(path, { force: true });
      };
    } catch (e) {
      // No state dir: nothing was ever enrolled here (enroll creates the dir before it locks).
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new AgentError('NOT_ENROLLED', `this device is not enrolled (${stateDir} does not exist); run \`latchkey enroll --server URL --token T\``);
      }
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const held = await readFile(path, 'utf8').catch(() => '');
    const pid = Number(held.split(' ')[0]);
    if (held && (!Number.isInteger(pid) || pid <= 0 || !alive(pid))) {
      // Stale: move it aside atomically. If what we moved is not the stale
      // lock we read (another agent took over in between), put it back.
      const aside = `${path}.stale-${randomBytes(4).toString('hex')}`;
      if (await rename(path, aside).then(() => true, () => false)) {
        const moved = await readFile(aside, 'utf8').catch(() => '');
        if (moved !== held) await link(aside, path).catch(() => undefined);
        await rm(aside, { force: true });
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new AgentError('STATE_LOCKED', `another latchkey (pid ${pid || '?'}) is changing ${stateDir}; try again when it is done`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
