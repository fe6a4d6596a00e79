/**
 * Deletes replayable events older than the retention (eventsRetentionDays,
 * default 7), in batches, at start and then hourly. A gateway whose cursor is
 * older than what is kept gets `resync-required` (replayStart) and fetches
 * the CRLs again: nothing is lost, the table stays bounded. Every replica
 * runs it; concurrent deletes of the same rows are harmless.
 */
import type { EventsRepo } from './events-repo.js';

export const EVENTS_RETENTION_DEFAULT_DAYS = 7;
const BATCH = 1000;
/** At most this many batches per run: a huge backlog is worked off over several runs, never in one long stall. */
const MAX_BATCHES = 100;
const EVERY_MS = 3600_000;

export interface EventsPrunerDeps {
  events: Pick<EventsRepo, 'pruneBefore'>;
  clock: () => Date;
  retentionDays: number;
  log: (msg: string, extra?: Record<string, unknown>) => void;
  batch?: number;
}

export function createEventsPruner(deps: EventsPrunerDeps) {
  const batch = deps.batch ?? BATCH;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;

  /** Deletes what is past the retention; resolves to how many events were deleted. */
  async function runOnce(): Promise<number> {
    const before = new Date(deps.clock().getTime() - deps.retentionDays * 86400_000).toISOString();
    let total = 0;
    for (let i = 0; i < MAX_BATCHES; i++) {
      const n = await deps.events.pruneBefore(before, batch);
      total += n;
      if (n < batch) break;
    }
    return total;
  }

  const tick = (): void => {
    if (running) return;
    running = runOnce();
    running
      .then(
        (n) => { if (n > 0) deps.log('deleted events past their retention (eventsRetentionDays)', { deleted: n }); },
        (e: Error) => deps.log('could not delete old events; trying again in an hour', { err: e.message }),
      )
      .finally(() => { running = undefined; });
  };

  return {
    runOnce,
    start(): void {
      timer = setInterval(tick, EVERY_MS);
      timer.unref();
      tick();
    },
    async stop(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}
