/**
 * Durable file replacement: write a temp file in the same directory, fsync
 * it, rename it over the target, fsync the directory. A crash at any point
 * leaves either the old content or the new, never a mix or an empty file.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', opts.mode ?? 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  } finally {
    await fh.close().catch(() => undefined);
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dir);
}

/** fsync a directory so a rename in it survives a power cut (no-op where unsupported, as on Windows). */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
