/** Device groups: list them, and set a group's policy (audited; connected agents of the group are told). */
import type { GroupPolicy } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { LatchkeyError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { Transactor } from '../storage/transaction.js';
import { type GroupsRepo, groupsRepo } from './groups-repo.js';

export type GroupSettings = Omit<GroupPolicy, 'name'>;

const GROUP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export interface GroupsService {
  list(): Promise<GroupPolicy[]>;
  set(name: string, settings: GroupSettings, actor: string): Promise<GroupPolicy>;
}

export function createGroupsService(deps: { groups: Pick<GroupsRepo, 'list'>; tx: Transactor; bus: Pick<EventBus, 'publish'>; clock: () => Date; maxCertLifetimeSeconds: number }): GroupsService {
  return {
    async list() {
      return (await deps.groups.list()).map((g) => ({ name: g.name, certLifetimeSeconds: g.cert_lifetime_seconds, requireApproval: !!g.require_approval }));
    },
    async set(name, settings, actor) {
      if (!GROUP_NAME.test(name)) throw new LatchkeyError('BAD_REQUEST', 'group names are lower-case letters, digits, - and _');
      if (settings.certLifetimeSeconds > deps.maxCertLifetimeSeconds) {
        throw new LatchkeyError('BAD_REQUEST', `certLifetimeSeconds may be at most ${deps.maxCertLifetimeSeconds} (maxCertLifetimeSeconds in config.json)`);
      }
      const at = deps.clock().toISOString();
      await deps.tx.inTransaction(async (trx) => {
        await groupsRepo(trx).upsert({ name, cert_lifetime_seconds: settings.certLifetimeSeconds, require_approval: settings.requireApproval ? 1 : 0, created_at: at });
        await auditRepo(trx).insert({ at, actor, action: 'group.set', target: name, details: settings });
      });
      await deps.tx.durable();
      // Connected agents of this group get the new policy now (on every replica).
      await deps.bus.publish({ type: 'policy', group: name, at });
      return { name, ...settings };
    },
  };
}
