import type { Executor } from '../storage/executor.js';

/**
 * Keys that must never be enrolled again: every key a device revoked for
 * keyCompromise ever held (its certificates' SPKIs, and the key of a pending
 * request), by SHA-256 of the SPKI.
 */
export type CompromisedKeysRepo = ReturnType<typeof compromisedKeysRepo>;

export const compromisedKeysRepo = (db: Executor) => ({
  /** Records every key of the device; call inside the revocation's transaction. Idempotent. */
  async addForDevice(deviceId: string, at: string): Promise<void> {
    // INSERT … SELECT: one statement however many certificates the device has.
    await db
      .insertInto('compromised_keys')
      .columns(['spki_hash', 'device_id', 'recorded_at'])
      .expression((eb) =>
        eb
          .selectFrom('certificates')
          .select((s) => ['spki_hash', s.val(deviceId).as('device_id'), s.val(at).as('recorded_at')])
          .distinct()
          .where('device_id', '=', deviceId),
      )
      .onConflict((oc) => oc.column('spki_hash').doNothing())
      .execute();
    const pending = await db.selectFrom('devices').select('pending_spki_hash').where('id', '=', deviceId).executeTakeFirst();
    if (pending?.pending_spki_hash) {
      await db.insertInto('compromised_keys').values({ spki_hash: pending.pending_spki_hash, device_id: deviceId, recorded_at: at }).onConflict((oc) => oc.column('spki_hash').doNothing()).execute();
    }
  },
  async has(spkiHash: string): Promise<boolean> {
    return (await db.selectFrom('compromised_keys').select('spki_hash').where('spki_hash', '=', spkiHash).executeTakeFirst()) !== undefined;
  },
});
