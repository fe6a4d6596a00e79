/**
 * An exclusive lock between processes: a lock file created with O_EXCL
 * holding `pid host nonce`. A lock whose holder is gone (a process of this
 * host that no longer exists) or that is older than `staleMs` (a holder that
 * hangs, or another host sharing the directory) is taken over. Used by the
 * CLI around read-refresh-write of its session file.
 */
import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';

export class LockBusyError extends Error {
  override readonly name = 'LockBusyError';
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Whether a lock with this content and age is abandoned. */
export function isStaleLock(content: string, ageMs: number, staleMs: number, here = { host: hostname(), alive }): boolean {
  if (ageMs > staleMs) return true;
  const [pidText, host] = content.split(' ');
  const pid = Number(pidText);
  // Half written (the holder is between create and write): give it the benefit of the doubt until staleMs.
  if (!content) return false;
  if (!Number.isInteger(pid) || pid <= 0) return true;
  return host === here.host && !here.alive(pid);
}

export async function withLockFile<T>(path: string, fn: () => Promise<T>, opts: { waitMs?: number; staleMs?: number; pollMs?: number } = {}): Promise<T> {
  const mine = `${process.pid} ${hostname()} ${randomBytes(8).toString('hex')}`;
  const staleMs = opts.staleMs ?? 60_000;
  const deadline = Date.now() + (opts.waitMs ?? 60_000);
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(mine);
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const held = await readFile(path, 'utf8').catch(() => undefined);
    const st = await stat(path).catch(() => undefined);
    if (held === undefined || !st) continue; // released meanwhile
    if (isStaleLock(held, Date.now() - st.mtimeMs, staleMs)) {
      // Move it aside atomically; if what was moved is not the stale lock read
      // (another process took over in between), put it back.
      const aside = `${path}.stale-${randomBytes(4).toString('hex')}`;
      if (await rename(path, aside).then(() => true, () => false)) {
        const moved = await readFile(aside, 'utf8').catch(() => '');
        if (moved !== held) await link(aside, path).catch(() => undefined);
        await rm(aside, { force: true });
      }
      continue;
    }
    if (Date.now() > deadline) throw new LockBusyError(`another process (pid ${held.split(' ')[0] || '?'}) holds ${path}`);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 50));
  }
  try {
    return await fn();
  } finally {
    // Only remove the lock if it is still ours (a holder past staleMs may have lost it).
    if ((await readFile(path, 'utf8').catch(() => '')) === mine) await rm(path, { force: true });
  }
}
