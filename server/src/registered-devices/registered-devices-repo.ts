/** Devices registered in advance by their TPM's EK (issue 14's inventory). */
import type { Executor } from '../storage/executor.js';
import type { RegisteredDevicesTable } from '../storage/schema.js';

export type RegisteredDevicesRepo = ReturnType<typeof registeredDevicesRepo>;

export const registeredDevicesRepo = (db: Executor) => ({
  /** Which of these EK hashes are registered already (looked up 500 at a time). */
  async registeredOf(hashes: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < hashes.length; i += 500) {
      for (const r of await db.selectFrom('registered_devices').select('ek_hash').where('ek_hash', 'in', hashes.slice(i, i + 500)).execute()) found.add(r.ek_hash);
    }
    return found;
  },
  findByEkHash: (ekHash: string) => db.selectFrom('registered_devices').selectAll().where('ek_hash', '=', ekHash).executeTakeFirst(),
  /** The device that enrolled with this EK (attested enrollment), in its transaction. */
  markUsedBy: async (ekHash: string, deviceId: string): Promise<void> => void (await db.updateTable('registered_devices').set({ used_by_device: deviceId }).where('ek_hash', '=', ekHash).execute()),
  findById: (id: string) => db.selectFrom('registered_devices').selectAll().where('id', '=', id).executeTakeFirst(),
  async insert(rows: RegisteredDevicesTable[]): Promise<void> {
    // In chunks: a 10,000-row import stays under every engine's bound-parameter limit.
    for (let i = 0; i < rows.length; i += 500) await db.insertInto('registered_devices').values(rows.slice(i, i + 500)).execute();
  },
  /** Oldest first, keyset on (created_at, id). */
  list: (limit: number, after?: { createdAt: string; id: string }) => {
    let q = db.selectFrom('registered_devices').selectAll().orderBy('created_at').orderBy('id').limit(limit);
    if (after) q = q.where((eb) => eb.or([eb('created_at', '>', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('id', '>', after.id)])]));
    return q.execute();
  },
  async delete(id: string): Promise<boolean> {
    const r = await db.deleteFrom('registered_devices').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  },
});
