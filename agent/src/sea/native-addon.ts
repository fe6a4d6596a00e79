/**
 * Loads a native addon (`*.node`) in the single-file `latchkey` binary.
 *
 * `scripts/package.mjs` bundles the agent with esbuild and rewrites every
 * `require('…/x.node')` into a call of `loadNativeAddon` below. Inside the
 * single executable (`node:sea`), the addon's bytes are a SEA asset: they are
 * written once to a per-user cache directory under a name that carries their
 * SHA-256, and `process.dlopen`ed from there (the OS loader needs a file).
 * Outside the executable (the bundle run by plain `node`), the addon is loaded
 * from where it was built, as `require` would.
 *
 * The cache directory is created 0700 and must belong to the current user and
 * not be writable by anyone else; a cached file is only reused when its hash
 * still matches, and is written to a temporary name and renamed into place, so
 * concurrent first runs and a half-written file are harmless.
 */
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as sea from 'node:sea';
import { writeFileAtomicSync } from '../state/atomic.js';
import { readTestHooks } from '../test-hooks.js';

export interface NativeAddon {
  /** SEA asset key, e.g. `keytar.node` (unique within one binary). */
  readonly asset: string;
  /** SHA-256 (hex) of the addon, computed when the binary was built. */
  readonly sha256: string;
  /** Where the addon was built: used when running outside the single executable. */
  readonly devPath: string;
}

const loaded = new Map<string, unknown>();

export function loadNativeAddon(addon: NativeAddon): unknown {
  const hit = loaded.get(addon.asset);
  if (hit !== undefined) return hit;
  const inSea = sea.isSea();
  const file = inSea ? materialize(addon) : addon.devPath;
  const mod = { exports: {} as unknown };
  try {
    process.dlopen(mod, file);
  } catch (e) {
    throw new Error(`cannot load the native addon ${addon.asset} from ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (readTestHooks(process.env).seaDebug) process.stderr.write(`latchkey: loaded ${addon.asset} from ${inSea ? 'the SEA asset, cached at ' : ''}${file}\n`);
  loaded.set(addon.asset, mod.exports);
  return mod.exports;
}

/** Per-user cache for extracted addons; `LATCHKEY_ADDON_CACHE` overrides it. */
export function addonCacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (env.LATCHKEY_ADDON_CACHE) return env.LATCHKEY_ADDON_CACHE;
  const home = safeHome();
  if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'latchkey', 'addons');
  if (platform === 'darwin') return join(home, 'Library', 'Caches', 'latchkey', 'addons');
  return join(env.XDG_CACHE_HOME ?? join(home, '.cache'), 'latchkey', 'addons');
}

function safeHome(): string {
  try {
    return homedir();
  } catch {
    return tmpdir();
  }
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function materialize(addon: NativeAddon): string {
  const bytes = new Uint8Array(sea.getAsset(addon.asset));
  const actual = sha256(bytes);
  if (actual !== addon.sha256) throw new Error(`the embedded ${addon.asset} is corrupt (sha256 ${actual}, expected ${addon.sha256}); rebuild the latchkey binary`);
  const dir = addonCacheDir();
  ensurePrivateDir(dir);
  const file = join(dir, `${addon.sha256.slice(0, 32)}-${addon.asset}`);
  try {
    if (sha256(readFileSync(file)) === addon.sha256) return file;
    rmSync(file, { force: true }); // stale or damaged: replace it
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  try {
    writeFileAtomicSync(file, bytes, { mode: 0o500 });
  } catch (e) {
    // Windows refuses to replace a file another latchkey has open: theirs is identical.
    if (process.platform !== 'win32' || sha256(readFileSync(file)) !== addon.sha256) throw e;
  }
  return file;
}

/** Creates `dir` 0700 and refuses one that another user could write into. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.platform === 'win32') return; // %LOCALAPPDATA% is private by its ACL
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory()) throw new Error(`addon cache ${dir} is not a directory`);
  if (uid !== undefined && st.uid !== uid) throw new Error(`addon cache ${dir} belongs to uid ${st.uid}, not to you (uid ${uid}); remove it or set LATCHKEY_ADDON_CACHE`);
  if ((st.mode & 0o022) !== 0) throw new Error(`addon cache ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}); run \`chmod 700 ${dir}\``);
}
