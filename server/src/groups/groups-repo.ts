/** Device groups: the policy (certificate lifetime, approval, attestation) every device of the group gets. */
import type { Executor } from '../storage/executor.js';
import type { GroupsTable } from '../storage/schema.js';

export type GroupsRepo = ReturnType<typeof groupsRepo>;

export const groupsRepo = (db: Executor) => ({
  get: (name: string) => db.selectFrom('groups').selectAll().where('name', '=', name).executeTakeFirst(),
  list: () => db.selectFrom('groups').selectAll().orderBy('name').execute(),
  async upsert(g: GroupsTable): Promise<void> {
    await db
      .insertInto('groups')
      .values(g)
      .onConflict((oc) => oc.column('name').doUpdateSet({ cert_lifetime_seconds: g.cert_lifetime_seconds, require_approval: g.require_approval, attestation: g.attestation ?? 'none', require_registered_ek: g.require_registered_ek ?? 0 }))
      .execute();
  },
  async ensure(g: GroupsTable): Promise<void> {
    await db.insertInto('groups').values(g).onConflict((oc) => oc.column('name').doNothing()).execute();
  },
});
