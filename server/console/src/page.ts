/** What every page gets from the router. One file per page under pages/, each exporting a `Page`. */
import type { AdminRole, ConsoleSession } from '@latchkey/protocol';
import { roleAtLeast } from '@latchkey/protocol/wire';

export interface PageContext {
  session: ConsoleSession;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The page's container inside <main>. */
  root: HTMLElement;
  /** Run when the person leaves the page (unsubscribe from live events, timers). */
  onDispose(fn: () => void): void;
  /** `state` travels in history.state (the devices page keeps its cursor stack there). */
  navigate(path: string, opts?: { replace?: boolean; state?: unknown }): void;
  setTitle(title: string): void;
}

export type Page = (ctx: PageContext) => void | Promise<void>;

/** Whether `role` may use what needs `min` (the server decides anyway; this only hides buttons). */
export function can(role: AdminRole, min: AdminRole): boolean {
  return roleAtLeast(role, min);
}
