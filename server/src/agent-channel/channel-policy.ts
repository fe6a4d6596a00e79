/**
 * Each group's `policy` message, read once for all its agents: kept a few
 * seconds for the agents connecting meanwhile; a policy event (any replica)
 * reads it afresh. Undefined if the group is gone.
 */
import type { GroupsRepo } from '../groups/groups-repo.js';
import { policyMessage } from './channel-fns.js';

/** How long a group's policy message is reused for connecting agents. */
const POLICY_CACHE_MS = 5000;

export interface PolicyCache {
  get(group: string, fresh?: boolean): Promise<string | undefined>;
  drop(group: string): void;
}

export function createPolicyCache(deps: { groups: Pick<GroupsRepo, 'get'>; heartbeatSeconds: number; now?: () => number }): PolicyCache {
  const now = deps.now ?? Date.now;
  const policies = new Map<string, { at: number; msg: Promise<string | undefined> }>();
  return {
    get(group, fresh = false) {
      const hit = policies.get(group);
      if (!fresh && hit && now() - hit.at < POLICY_CACHE_MS) return hit.msg;
      const msg = deps.groups.get(group).then((g) => (g ? policyMessage(g, deps.heartbeatSeconds) : undefined));
      policies.set(group, { at: now(), msg });
      msg.catch(() => policies.delete(group));
      return msg;
    },
    drop: (group) => void policies.delete(group),
  };
}
