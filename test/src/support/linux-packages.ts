/**
 * The Linux packages for the package tests, built once by `scripts/package`
 * (`--only deb,rpm`) and cached by a hash of their inputs (the built agent,
 * server and console, the packaging scripts, the lockfile, this Node): the
 * suite runs twice in CI and building takes minutes. LATCHKEY_PACKAGES_DIR
 * tests packages built elsewhere instead.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { ROOT } from './processes.js';

const INPUTS = ['agent/dist', 'server/dist', 'server/console/dist', 'scripts/package', 'agent/scripts/package.mjs', 'pnpm-lock.yaml', 'package.json'];

function hashInputs(): string {
  const h = createHash('sha256').update(process.version).update(process.execPath);
  const add = (p: string): void => {
    const abs = join(ROOT, p);
    if (!existsSync(abs)) return;
    if (statSync(abs).isDirectory()) {
      for (const name of readdirSync(abs).sort()) if (!name.endsWith('.tsbuildinfo') && !name.endsWith('.map')) add(join(p, name));
    } else {
      h.update(p).update(readFileSync(abs));
    }
  };
  for (const p of INPUTS) add(p);
  return h.digest('hex').slice(0, 16);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let built: Promise<{ dir: string } | { error: string }> | undefined;

/** The directory holding the .debs, .rpms, SBOMs and SHA256SUMS (one build per input hash, shared across processes). */
export function linuxPackages(): Promise<{ dir: string } | { error: string }> {
  built ??= (async () => {
    if (process.env.LATCHKEY_PACKAGES_DIR) return { dir: process.env.LATCHKEY_PACKAGES_DIR };
    const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'latchkey-package');
    const dir = join(cache, `linux-${hashInputs()}`);
    const lock = `${dir}.lock`;
    mkdirSync(cache, { recursive: true });
    // One builder at a time (test files run in parallel): mkdir is atomic.
    for (let waited = 0; ; waited += 2000) {
      if (existsSync(join(dir, 'SHA256SUMS'))) return { dir };
      try {
        mkdirSync(lock);
        break;
      } catch {
        if (waited > 30 * 60_000 || Date.now() - statSync(lock).mtimeMs > 30 * 60_000) rmSync(lock, { recursive: true, force: true });
        await sleep(2000);
      }
    }
    try {
      if (existsSync(join(dir, 'SHA256SUMS'))) return { dir };
      const tmp = `${dir}.tmp`;
      rmSync(tmp, { recursive: true, force: true });
      const out: string[] = [];
      const code = await new Promise<number | null>((resolve, reject) => {
        const p = spawn(process.execPath, [join(ROOT, 'scripts/package/index.mjs'), '--only', 'deb,rpm', '--out-dir', tmp], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        p.stdout.on('data', (d: Buffer) => out.push(d.toString()));
        p.stderr.on('data', (d: Buffer) => out.push(d.toString()));
        p.on('error', reject);
        p.on('close', resolve);
      });
      if (code !== 0) return { error: `scripts/package/index.mjs --only deb,rpm failed (exit ${code}):\n${out.join('').slice(-4000)}` };
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
      // Older builds of other inputs: keep the cache to the newest few.
      const old = readdirSync(cache).filter((n) => /^linux-[0-9a-f]{16}$/.test(n)).map((n) => join(cache, n)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
      for (const d of old.slice(3)) rmSync(d, { recursive: true, force: true });
      process.stderr.write(`linux packages built into ${relative(ROOT, dir)}\n`);
      return { dir };
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  })();
  return built;
}

/** The artefact of `pattern` in the packages dir. */
export function artefact(dir: string, pattern: RegExp): string {
  const f = readdirSync(dir).find((n) => pattern.test(n));
  if (!f) throw new Error(`no file matching ${pattern} in ${dir}: ${readdirSync(dir).join(', ')}`);
  return join(dir, f);
}
