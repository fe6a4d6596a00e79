/**
 * Durable file replacement, the agent's only one: write a temp file in the
 * same directory, fsync it, rename it over the target, fsync the directory.
 * A crash at any point leaves either the old content or the new, never a mix
 * or an empty file. `writeFileAtomicSync` is the same steps for the one
 * caller that cannot wait (a native addon extracted while `require` runs).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const tempFor = (path: string): string => join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);

export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number } = {}): Promise<void> {
  const dir = dirname(path);
  const tmp = tempFor(path);
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

export function writeFileAtomicSync(path: string, data: Uint8Array, opts: { mode?: number } = {}): void {
  const tmp = tempFor(path);
  const fd = openSync(tmp, 'wx', opts.mode ?? 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  if (process.platform === 'win32') return;
  const d = openSync(dirname(path), 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}
