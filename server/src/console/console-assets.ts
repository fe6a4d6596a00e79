/**
 * The web console's built files (server/console/dist, made by `pnpm build`),
 * read once at start into memory with their gzip and brotli forms: a few
 * hashed files, served with long caching; the HTML shell is never cached.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';

export interface ConsoleFile {
  type: string;
  body: Buffer;
  gzip: Buffer;
  br: Buffer;
}

export interface ConsoleAssets {
  /** The HTML shell every page answers; undefined when the console was not built. */
  shell: ConsoleFile | undefined;
  /** An asset by its file name (`app-<hash>.js`). */
  asset(name: string): ConsoleFile | undefined;
  /** Where they were looked for (said in the answer when the console is missing). */
  dir: string;
}

/** The built console beside the compiled server: server/dist/console/ → server/console/dist/. */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../console/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};
/** What one asset may weigh: the console is small; anything bigger is a build mistake. */
const MAX_ASSET_BYTES = 4 * 1024 * 1024;
const MAX_ASSETS = 200;

function load(path: string, type: string): ConsoleFile {
  const body = readFileSync(path);
  return {
    type,
    body,
    gzip: gzipSync(body, { level: 9 }),
    br: brotliCompressSync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: body.length } }),
  };
}

/** Loaded consoles by folder and build time: tests build many apps in one process, compressing once. */
const loaded = new Map<string, { mtimeMs: number; assets: ConsoleAssets }>();

export function loadConsoleAssets(dir: string = DEFAULT_CONSOLE_DIR): ConsoleAssets {
  const index = join(dir, 'index.html');
  if (!existsSync(index)) return { shell: undefined, asset: () => undefined, dir };
  const mtimeMs = statSync(index).mtimeMs;
  const hit = loaded.get(dir);
  if (hit && hit.mtimeMs === mtimeMs) return hit.assets;
  const assets = readConsole(dir, index);
  loaded.set(dir, { mtimeMs, assets });
  return assets;
}

function readConsole(dir: string, index: string): ConsoleAssets {
  const assets = new Map<string, ConsoleFile>();
  const assetDir = join(dir, 'assets');
  if (existsSync(assetDir)) {
    for (const name of readdirSync(assetDir).slice(0, MAX_ASSETS)) {
      const ext = /\.[a-z0-9]+$/.exec(name)?.[0] ?? '';
      const type = TYPES[ext];
      const path = join(assetDir, name);
      if (!type || !/^[A-Za-z0-9._-]+$/.test(name) || !statSync(path).isFile() || statSync(path).size > MAX_ASSET_BYTES) continue;
      assets.set(name, load(path, type));
    }
  }
  return { shell: load(index, TYPES['.html']!), asset: (name) => assets.get(name), dir };
}

/** The representation to send for an Accept-Encoding header: brotli, gzip or identity. */
export function pickEncoding(accept: string | undefined): 'br' | 'gzip' | undefined {
  if (!accept) return undefined;
  const offered = new Map<string, number>();
  for (const part of accept.toLowerCase().split(',')) {
    const [coding, ...params] = part.trim().split(';');
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((x) => x !== undefined);
    offered.set(coding!.trim(), q === undefined ? 1 : Number(q));
  }
  const ok = (c: string): boolean => (offered.get(c) ?? offered.get('*') ?? 0) > 0;
  return ok('br') ? 'br' : ok('gzip') ? 'gzip' : undefined;
}
