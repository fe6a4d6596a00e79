/**
 * Loaded into the latchkey-server process of `pnpm bench:channels` with
 * `node --expose-gc --import …/channel-bench-probe.js`: the server's code is
 * unchanged; this only answers the bench. On SIGUSR2 it writes one line to
 * stderr, `CHANNEL-BENCH-PROBE {json}`: the event-loop delay since the last
 * probe (p50/p99/max), then, after a full GC, memoryUsage() and V8 heap
 * figures. It also ends the server (SIGTERM) when the bench's end of stdin
 * closes, so a killed bench leaves no server behind.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import { getHeapStatistics } from 'node:v8';

const RESOLUTION_MS = 10;
const eld = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
eld.enable();

process.on('SIGUSR2', () => {
  // Each sample is the time between two timer ticks: the resolution is not delay.
  const delay = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  const loop = { p50: delay(eld.percentile(50)), p99: delay(eld.percentile(99)), max: delay(eld.max) };
  const gc = (globalThis as { gc?: () => void }).gc;
  const t0 = performance.now();
  gc?.();
  const gcMs = performance.now() - t0;
  const heap = getHeapStatistics();
  // memoryUsage() reads /proc/self/stat for the RSS: at the fd limit that throws EMFILE (the bench reads VmRSS itself).
  let mem: Partial<NodeJS.MemoryUsage>;
  try {
    mem = process.memoryUsage();
  } catch {
    mem = { heapUsed: heap.used_heap_size, heapTotal: heap.total_heap_size, external: heap.external_memory };
  }
  process.stderr.write(`CHANNEL-BENCH-PROBE ${JSON.stringify({ loop, gcMs, gc: !!gc, mem, heapSizeLimit: heap.heap_size_limit, handles: (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.().length })}\n`);
  // The GC pause above is the probe's, not the server's: start the next window after it.
  setTimeout(() => eld.reset(), 50).unref();
});

process.stdin.on('data', () => undefined);
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.on('error', () => undefined);
(process.stdin as Socket).unref?.();
