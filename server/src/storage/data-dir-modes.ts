/**
 * The data dir holds the CA keys, the admin token and the database: only its
 * owner may read or write them. `start` refuses a data dir, key or database
 * that others can reach, and says which `chmod` fixes it; it never changes
 * modes itself (an operator should learn how the files got that way).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

export interface ModeProblem {
  path: string;
  mode: number;
  fix: string;
}

const octal = (m: number): string => (m & 0o777).toString(8).padStart(4, '0');

/** Every path that must be the owner's only; the ones that do not exist are skipped. */
export function modeProblems(dataDir: string, secretFiles: readonly string[]): ModeProblem[] {
  const problems: ModeProblem[] = [];
  const check = (path: string, isDir: boolean): void => {
    let mode: number;
    try {
      mode = statSync(path).mode;
    } catch {
      return;
    }
    if ((mode & 0o077) !== 0) problems.push({ path, mode, fix: `chmod ${isDir ? '700' : '600'} ${path}` });
  };
  check(dataDir, true);
  for (const f of new Set(secretFiles.map((f) => (f.startsWith('/') ? f : join(dataDir, f))))) check(f, false);
  return problems;
}

/** One message naming every problem and its fix; undefined when all is private. */
export function modeProblemsMessage(problems: readonly ModeProblem[]): string | undefined {
  if (problems.length === 0) return undefined;
  return [
    'refusing to start: others can read or write files that must be private to the server (CA keys, tokens, database):',
    ...problems.map((p) => `  ${p.path} has mode ${octal(p.mode)}; fix: ${p.fix}`),
  ].join('\n');
}
