/**
 * Messages between `pnpm bench:channels` (channel-bench.ts) and its client
 * processes (channel-bench-client.ts), and the clock both use.
 */

/**
 * Wall-clock milliseconds with sub-millisecond resolution, comparable across
 * processes on one machine (each process's timeOrigin is read from the same
 * realtime clock, then advances on the monotonic one).
 */
export const now = (): number => performance.timeOrigin + performance.now();

export interface WorkerStats {
  /** Connections that got `welcome` and are open now. */
  open: number;
  /** Attempts that never got `welcome` (each retry counts). */
  failed: number;
  inflight: number;
  heartbeatsSent: number;
  acks: number;
  /** `policy` messages received right after `welcome` (not the measured fan-out). */
  policiesAtWelcome: number;
  /** Close codes of welcomed connections the server closed, other than revocations. */
  unexpectedCloses: Record<string, number>;
  /** Why attempts failed. */
  failures: Record<string, number>;
}

export type ToClient =
  | {
      cmd: 'connect';
      devicesFile: string;
      port: number;
      ca: string;
      key: string;
      chain: string;
      localAddresses: string[];
      /** Handshakes in flight at a time. */
      inflight: number;
      retries: number;
      timeoutMs: number;
      /** Stop starting new connections after this long. */
      budgetMs: number;
    }
  | { cmd: 'stats' }
  | { cmd: 'expect-policy'; lifetime: number; timeoutMs: number }
  | { cmd: 'stop' };

export type ToParent =
  | { type: 'ready' }
  | { type: 'progress'; stats: WorkerStats }
  | { type: 'connected'; stats: WorkerStats; welcomeMs: number[]; deviceIds: string[] }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'got'; kind: 'revoked' | 'renew-now'; deviceId: string; at: number }
  | { type: 'armed'; lifetime: number; waiting: number }
  | { type: 'policy-done'; lifetime: number; times: number[]; missing: number }
  | { type: 'fatal'; message: string };
