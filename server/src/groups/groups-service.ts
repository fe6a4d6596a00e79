/** Device groups: list them, and set a group's policy (audited; connected agents of the group are told). */
import type { GroupPolicy } from '@latchkey/protocol';
import { auditRepo } from '../audit/audit-repo.js';
import { LatchkeyError } from '../errors.js';
import type { EventBus } from '../events/event-bus.js';
import type { GroupsTable } from '../storage/schema.js';
import type { Transactor } from '../storage/transaction.js';
import { type GroupsRepo, groupsRepo } from './groups-repo.js';

export type GroupSettings = Omit<GroupPolicy, 'name'>;

const GROUP_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** A group's row as its policy. */
export function settingsOf(g: GroupsTable): GroupSettings {
  return { certLifetimeSeconds: g.cert_lifetime_seconds, requireApproval: !!g.require_approval, attestation: g.attestation ?? 'none', requireRegisteredEk: !!g.require_registered_ek };
}

export interface GroupsService {
  list(): Promise<GroupPolicy[]>;
  /** Sets what is given; a setting left out keeps its value (a new group needs certLifetimeSeconds). */
  set(name: string, given: Partial<GroupSettings>, actor: string): Promise<GroupPolicy>;
}

export function createGroupsService(deps: { groups: Pick<GroupsRepo, 'list'>; tx: Transactor; bus: Pick<EventBus, 'publish'>; clock: () => Date; maxCertLifetimeSeconds: number }): GroupsService {
  return {
    async list() {
      return (await deps.groups.list()).map((g) => ({ name: g.name, ...settingsOf(g) }));
    },
    async set(name, given, actor) {
      if (!GROUP_NAME.test(name)) throw new LatchkeyError('BAD_REQUEST', 'group names are lower-case letters, digits, - and _');
      if (given.certLifetimeSeconds !== undefined && given.certLifetimeSeconds > deps.maxCertLifetimeSeconds) {
        throw new LatchkeyError('BAD_REQUEST', `certLifetimeSeconds may be at most ${deps.maxCertLifetimeSeconds} (maxCertLifetimeSeconds in config.json)`);
      }
      const at = deps.clock().toISOString();
      const settings = await deps.tx.inTransaction(async (trx) => {
        const prev = await groupsRepo(trx).get(name);
        const certLifetimeSeconds = given.certLifetimeSeconds ?? prev?.cert_lifetime_seconds;
        if (certLifetimeSeconds === undefined) throw new LatchkeyError('BAD_REQUEST', `group ${name} does not exist yet: give its certLifetimeSeconds (latchkey-server groups set ${name} --lifetime 24h)`);
        const was = prev ? settingsOf(prev) : undefined;
        const settings: GroupSettings = {
          certLifetimeSeconds,
          requireApproval: given.requireApproval ?? was?.requireApproval ?? false,
          attestation: given.attestation ?? was?.attestation ?? 'none',
          requireRegisteredEk: given.requireRegisteredEk ?? was?.requireRegisteredEk ?? false,
        };
        await groupsRepo(trx).upsert({
          name,
          cert_lifetime_seconds: settings.certLifetimeSeconds,
          require_approval: settings.requireApproval ? 1 : 0,
          attestation: settings.attestation,
          require_registered_ek: settings.requireRegisteredEk ? 1 : 0,
          created_at: at,
        });
        await auditRepo(trx).insert({ at, actor, action: 'group.set', target: name, details: settings });
        return settings;
      });
      await deps.tx.durable();
      // Connected agents of this group get the new policy now (on every replica).
      await deps.bus.publish({ type: 'policy', group: name, at });
      return { name, ...settings };
    },
  };
}
