/**
 * A full disk under the database. SQLite answers SQLITE_FULL (usually at
 * COMMIT, when the WAL must grow) and has already rolled the transaction
 * back; PostgreSQL answers 53100 disk_full. Either way nothing was written:
 * the request gets 503 STORAGE_FULL, and the operator reads "disk full" in
 * the log once per episode, not once per failed request.
 */
import { LatchkeyError } from '../errors.js';

export function isStorageFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === '53100';
}

export const RETRY_AFTER_FULL_SECONDS = 60;

export function storageFullError(cause: unknown): LatchkeyError {
  return new LatchkeyError('STORAGE_FULL', "the server's storage is full, so nothing was changed; retry later", {
    cause,
    headers: { 'Retry-After': String(RETRY_AFTER_FULL_SECONDS) },
  });
}

/**
 * Says "disk full" once when writes start failing, and once when a write
 * commits again. `where` names the volume to free.
 */
export function createFullWatch(where: string, log: (line: string) => void): { full(): void; wrote(): void } {
  let full = false;
  return {
    full() {
      if (full) return;
      full = true;
      log(`disk full: the database ${where} cannot be written (no space left on its volume). Requests that change anything answer 503 STORAGE_FULL and change nothing; reads still work. Free space on that volume (\`df -h\`): writes resume by themselves.`);
    },
    wrote() {
      if (!full) return;
      full = false;
      log(`disk space is back: the database ${where} is written again`);
    },
  };
}
