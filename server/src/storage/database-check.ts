/**
 * Before `init` writes anything: is the PostgreSQL database of --database-url
 * there and reachable? A missing database is the usual first-run mistake; the
 * answer says how to create it.
 */
import pg from 'pg';

/** The URL without its password, for messages. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** The `createdb` line for the database a URL names (host, port, user from the URL). */
export function createDbCommand(url: string): string {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const args = ['createdb'];
  if (u.hostname) args.push('-h', u.hostname.replace(/^\[|\]$/g, ''));
  if (u.port) args.push('-p', u.port);
  if (u.username) args.push('-U', decodeURIComponent(u.username));
  args.push(/^[A-Za-z0-9_]+$/.test(name) ? name : `'${name.replaceAll("'", "'\\''")}'`);
  return args.join(' ');
}

/**
 * Connects once and runs `SELECT 1`; null when that works, otherwise a
 * message for the operator (PostgreSQL's SQLSTATE 3D000 is "invalid catalog
 * name": the database does not exist).
 */
export async function checkPostgres(url: string, timeoutMs = 5000): Promise<string | null> {
  let client: pg.Client;
  try {
    client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  } catch (e) {
    return `--database-url ${redactDatabaseUrl(url)} is not a PostgreSQL URL (${(e as Error).message}); give postgres://USER@HOST:PORT/DATABASE`;
  }
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === '3D000') {
      return `the PostgreSQL database of --database-url ${redactDatabaseUrl(url)} does not exist (${err.message}); create it first, e.g. \`${createDbCommand(url)}\` (or CREATE DATABASE in psql), then run init again`;
    }
    return `cannot use the PostgreSQL database at ${redactDatabaseUrl(url)}: ${err.message}; check that PostgreSQL runs there and the user may connect, then run init again`;
  } finally {
    await client.end().catch(() => undefined);
  }
}
