/**
 * Config from the data dir's config.json, then environment, then flags;
 * validated once into a frozen object. A bad config is one clear message.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { type HostPort, localUrl, parseHostPort } from '@latchkey/protocol';
import { AttestationConfigSchema, CONFIG_DEFAULTS, OidcConfigSchema, ServerConfigSchema, type ServerConfig } from './config-schema.js';

export const CONFIG_FILE = 'config.json';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface ConfigOverrides {
  listen?: string;
  databaseUrl?: string;
}

export function loadConfig(dataDir: string, env: NodeJS.ProcessEnv, flags: ConfigOverrides = {}): ServerConfig {
  const file = join(dataDir, CONFIG_FILE);
  if (!existsSync(file)) {
    throw new ConfigError(`no ${CONFIG_FILE} in ${dataDir}: run \`latchkey-server init --data-dir ${dataDir} …\` first`);
  }
  let fromFile: unknown;
  try {
    fromFile = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) throw new ConfigError(`${file} must hold a JSON object`);
  const merged: Record<string, unknown> = { ...CONFIG_DEFAULTS, ...(fromFile as Record<string, unknown>) };
  if (env.LATCHKEY_LISTEN) merged.listen = env.LATCHKEY_LISTEN;
  if (env.LATCHKEY_DATABASE_URL) merged.databaseUrl = env.LATCHKEY_DATABASE_URL;
  if (env.LATCHKEY_LOG_LEVEL) merged.logLevel = env.LATCHKEY_LOG_LEVEL;
  if (flags.listen) merged.listen = flags.listen;
  if (flags.databaseUrl) merged.databaseUrl = flags.databaseUrl;
  return withEkRootsDir(withOidcSecrets(validateConfig(merged, file), dataDir), dataDir);
}

/** attestation.ekRootsDir relative to the data dir, made absolute (the directory is read at start, attestation/ek-roots.ts). */
function withEkRootsDir(c: ServerConfig, dataDir: string): ServerConfig {
  const dir = c.attestation?.ekRootsDir;
  if (dir === undefined || isAbsolute(dir)) return c;
  return Object.freeze({ ...c, attestation: { ...c.attestation!, ekRootsDir: join(dataDir, dir) } });
}

/** Reads each issuer's `clientSecretFile` (relative to the data dir) into `clientSecret`; the file must be private. */
function withOidcSecrets(c: ServerConfig, dataDir: string): ServerConfig {
  if (!c.oidc) return c;
  const issuers = c.oidc.issuers.map((iss, i) => {
    if (iss.clientSecretFile === undefined) return iss;
    const path = isAbsolute(iss.clientSecretFile) ? iss.clientSecretFile : join(dataDir, iss.clientSecretFile);
    let text: string;
    try {
      if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
        throw new ConfigError(`oidc.issuers.${i}.clientSecretFile ${path} can be read by others; chmod 600 it`);
      }
      text = readFileSync(path, 'utf8').trim();
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(`oidc.issuers.${i}.clientSecretFile ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!text) throw new ConfigError(`oidc.issuers.${i}.clientSecretFile ${path} is empty`);
    return { ...iss, clientSecret: text };
  });
  return { ...c, oidc: { ...c.oidc, issuers } };
}

export function validateConfig(value: Record<string, unknown>, source: string): ServerConfig {
  if (value.oidc !== undefined) value = { ...value, oidc: Value.Default(OidcConfigSchema, structuredClone(value.oidc)) };
  if (value.attestation !== undefined) value = { ...value, attestation: Value.Default(AttestationConfigSchema, structuredClone(value.attestation)) };
  const first = Value.Errors(ServerConfigSchema, value).First();
  if (first) {
    const where = first.path ? first.path.slice(1).replace(/\//g, '.') : '(top level)';
    throw new ConfigError(`invalid configuration (${source}): ${where}: ${first.message}${first.value !== undefined && typeof first.value !== 'object' ? ` (got ${JSON.stringify(first.value)})` : ''}`);
  }
  const c = value as ServerConfig;
  if (!parseHostPort(c.listen)) throw new ConfigError(`invalid configuration (${source}): listen must be HOST:PORT or [IPv6]:PORT, e.g. 0.0.0.0:8443 (got ${JSON.stringify(c.listen)})`);
  if (c.certLifetimeSeconds > c.maxCertLifetimeSeconds) {
    throw new ConfigError(`invalid configuration (${source}): certLifetimeSeconds exceeds maxCertLifetimeSeconds`);
  }
  if (c.requestHeadersTimeoutSeconds > c.requestTimeoutSeconds) {
    throw new ConfigError(`invalid configuration (${source}): requestHeadersTimeoutSeconds exceeds requestTimeoutSeconds`);
  }
  for (const [i, iss] of (c.oidc?.issuers ?? []).entries()) {
    let u: URL | undefined;
    try {
      u = new URL(iss.issuer);
    } catch {
      u = undefined;
    }
    const local = u !== undefined && (u.hostname === '127.0.0.1' || u.hostname === 'localhost');
    if (!u || !(u.protocol === 'https:' || (u.protocol === 'http:' && local)) || u.search || u.hash) {
      throw new ConfigError(`invalid configuration (${source}): oidc.issuers.${i}.issuer must be an https:// URL without query (http only for 127.0.0.1/localhost), got ${JSON.stringify(iss.issuer)}`);
    }
    if (c.oidc!.issuers.findIndex((o) => o.issuer === iss.issuer) !== i) throw new ConfigError(`invalid configuration (${source}): oidc issuer ${iss.issuer} is listed twice`);
    if (iss.clientSecret !== undefined && iss.clientSecretFile !== undefined) throw new ConfigError(`invalid configuration (${source}): oidc.issuers.${i}: give clientSecret or clientSecretFile, not both`);
  }
  return Object.freeze({ ...c });
}

/** The address the server listens on (validated by validateConfig). */
export const listenAddress = (c: Pick<ServerConfig, 'listen'>): HostPort => parseHostPort(c.listen)!;

/** The running server's local URL from the data dir's config: its public URL may not resolve on this machine. */
export function localServerUrl(dataDir: string): string {
  const file = join(dataDir, CONFIG_FILE);
  const c = JSON.parse(readFileSync(file, 'utf8')) as { listen?: unknown };
  const listen = typeof c.listen === 'string' ? parseHostPort(c.listen) : undefined;
  if (!listen) throw new ConfigError(`listen in ${file} is not HOST:PORT; give the server's URL with --server`);
  return localUrl(listen);
}

/** The CA passphrase: LATCHKEY_CA_PASSPHRASE, else the file named in config. */
export function caPassphrase(dataDir: string, config: ServerConfig, env: NodeJS.ProcessEnv): string {
  if (env.LATCHKEY_CA_PASSPHRASE) return env.LATCHKEY_CA_PASSPHRASE;
  if (config.caPassphraseFile) {
    const p = config.caPassphraseFile.startsWith('/') ? config.caPassphraseFile : join(dataDir, config.caPassphraseFile);
    try {
      const s = readFileSync(p, 'utf8').trim();
      if (s) return s;
    } catch (e) {
      throw new ConfigError(`cannot read the CA passphrase file ${p}: ${(e as Error).message}`);
    }
  }
  throw new ConfigError('the CA key passphrase is needed: set LATCHKEY_CA_PASSPHRASE or caPassphraseFile in config.json');
}

