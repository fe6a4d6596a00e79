/**
 * One set of migrations for both engines, run at start. Each migration runs
 * once, in order, recorded in latchkey_migrations; on PostgreSQL an advisory
 * lock keeps two replicas from migrating at the same time.
 */
import { sql, type Kysely } from 'kysely';
import type { Db } from './db.js';

type Migration = { name: string; up: (db: Kysely<unknown>, engine: Db['engine']) => Promise<void> };

const MIGRATIONS: Migration[] = [
  {
    name: '001_initial',
    async up(db, engine) {
      const autoId = engine === 'postgres' ? 'bigserial' : 'integer';
      await db.schema
        .createTable('groups')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('cert_lifetime_seconds', 'integer', (c) => c.notNull())
        .addColumn('require_approval', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('enroll_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
        .addColumn('group_name', 'text', (c) => c.notNull().references('groups.name'))
        .addColumn('uses', 'integer', (c) => c.notNull())
        .addColumn('used_count', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('devices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('group_name', 'text', (c) => c.notNull().references('groups.name'))
        .addColumn('token_id', 'text', (c) => c.references('enroll_tokens.id'))
        .addColumn('pending_spki_hash', 'text')
        .addColumn('pending_csr', 'text')
        .addColumn('facts', 'text')
        .addColumn('user_email', 'text')
        .addColumn('first_seen', 'text', (c) => c.notNull())
        .addColumn('last_seen', 'text')
        .addColumn('approved_at', 'text')
        .addColumn('approved_by', 'text')
        .addColumn('revoked_at', 'text')
        .addColumn('revocation_reason', 'text')
        .execute();
      await db.schema.createIndex('devices_status').on('devices').columns(['status', 'first_seen']).execute();
      await db.schema.createIndex('devices_pending').on('devices').columns(['token_id', 'pending_spki_hash']).execute();
      await db.schema
        .createTable('certificates')
        .addColumn('serial', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('not_before', 'text', (c) => c.notNull())
        .addColumn('not_after', 'text', (c) => c.notNull())
        .addColumn('spki_hash', 'text', (c) => c.notNull())
        .addColumn('pem', 'text', (c) => c.notNull())
        .addColumn('issued_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .addColumn('revocation_reason', 'text')
        .execute();
      await db.schema.createIndex('certificates_device').on('certificates').columns(['device_id', 'issued_at']).execute();
      await db.schema.createIndex('certificates_revoked').on('certificates').columns(['revoked_at', 'not_after']).execute();
      await db.schema
        .createTable('admin_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('audit')
        .addColumn('id', autoId, (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('details', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('crl_state')
        .addColumn('ca', 'text', (c) => c.primaryKey())
        .addColumn('crl_number', 'integer', (c) => c.notNull())
        .addColumn('this_update', 'text', (c) => c.notNull())
        .addColumn('next_update', 'text', (c) => c.notNull())
        .addColumn('der_base64', 'text', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('events')
        .addColumn('id', autoId, (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .execute();
    },
  },
  {
    name: '002_gateway_tokens',
    async up(db) {
      await db.schema
        .createTable('gateway_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
    },
  },
  {
    name: '003_presence',
    async up(db) {
      await db.schema
        .createTable('replicas')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('seen_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('agent_sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('replica_id', 'text', (c) => c.notNull())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('since', 'text', (c) => c.notNull())
        .addColumn('agent_version', 'text')
        .addColumn('serial', 'text', (c) => c.notNull())
        .addColumn('remote', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('agent_sessions_replica').on('agent_sessions').column('replica_id').execute();
      await db.schema.createIndex('agent_sessions_device').on('agent_sessions').column('device_id').execute();
    },
  },
  {
    name: '004_revocation_outbox',
    async up(db, engine) {
      const autoId = engine === 'postgres' ? 'bigserial' : 'integer';
      await db.schema.alterTable('certificates').addColumn('replaces_serial', 'text').execute();
      await db.schema
        .createTable('outbox')
        .addColumn('id', autoId, (c) => (engine === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // Per-device counts of unexpired certificates (the cap) and renewals.
      await db.schema.createIndex('certificates_device_expiry').on('certificates').columns(['device_id', 'not_after']).execute();
    },
  },
  {
    // Keys of devices revoked for keyCompromise, refused at enrollment for good;
    // and certificates by key, for an enrollment retried with the same key.
    name: '005_compromised_keys',
    async up(db) {
      await db.schema
        .createTable('compromised_keys')
        .addColumn('spki_hash', 'text', (c) => c.primaryKey())
        .addColumn('device_id', 'text', (c) => c.notNull())
        .addColumn('recorded_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('certificates_spki').on('certificates').column('spki_hash').execute();
      // user_email was filled from the device's own facts: a claim, never an identity (issue 10 §2).
      await sql`update devices set user_email = null`.execute(db);
    },
  },
  {
    // Issue 12: people from the identity provider. Users (one per issuer and
    // subject); tokens and devices bound to a user; admin tokens that are
    // named API tokens or people's sessions; sign-ins in progress.
    name: '006_people',
    async up(db) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('groups', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('idp_refresh_token', 'text')
        .addColumn('last_sign_in_at', 'text')
        .addColumn('last_synced_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('users_issuer_subject', ['issuer', 'subject'])
        .execute();
      await db.schema.createIndex('users_email').on('users').column('email').execute();
      await db.schema.alterTable('enroll_tokens').addColumn('user_id', 'text').execute();
      await db.schema.alterTable('devices').addColumn('user_id', 'text').execute();
      await db.schema.createIndex('devices_user').on('devices').column('user_id').execute();
      await db.schema.alterTable('admin_tokens').addColumn('kind', 'text', (c) => c.notNull().defaultTo('token')).execute();
      await db.schema.alterTable('admin_tokens').addColumn('user_id', 'text').execute();
      await db.schema.alterTable('admin_tokens').addColumn('created_by', 'text').execute();
      await db.schema.alterTable('admin_tokens').addColumn('expires_at', 'text').execute();
      await db.schema.alterTable('admin_tokens').addColumn('last_used_at', 'text').execute();
      await db.schema.alterTable('admin_tokens').addColumn('refresh_hash', 'text').execute();
      await db.schema.alterTable('admin_tokens').addColumn('refresh_expires_at', 'text').execute();
      await db.schema.createIndex('admin_tokens_refresh').on('admin_tokens').column('refresh_hash').execute();
      await sql`update admin_tokens set kind = 'bootstrap' where name = 'initial-admin'`.execute(db);
      await db.schema
        .createTable('auth_flows')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('device_code', 'text')
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('state', 'text')
        .addColumn('code_challenge', 'text')
        .addColumn('redirect_uri', 'text')
        .addColumn('interval_seconds', 'integer', (c) => c.notNull())
        .addColumn('next_poll_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('remote', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('auth_flows_expiry').on('auth_flows').column('expires_at').execute();
    },
  },
  {
    // `devices list --user EMAIL` (GET /v1/admin/devices?user=): one person's
    // devices, in the list's order (first_seen, id), without a table scan.
    name: '007_devices_user_email',
    async up(db) {
      await db.schema.createIndex('devices_user_email').on('devices').columns(['user_email', 'first_seen', 'id']).execute();
    },
  },
  {
    // The web console's sessions signed in with an admin token (no IdP): a
    // session row whose parent is that token, so revoking the token ends them.
    name: '008_console_sessions',
    async up(db) {
      await db.schema.alterTable('admin_tokens').addColumn('parent_id', 'text').execute();
      await db.schema.createIndex('admin_tokens_parent').on('admin_tokens').column('parent_id').execute();
    },
  },
  {
    // Issue 13, the console: every sort of the devices list pages by keyset on
    // (sort key, id), read from an index in either direction; nullable keys
    // are sorted as coalesce(column, '') (devices-repo.ts sortKey). The search
    // by serial scans (serial, device_id) instead of the table. The audit
    // log's filters, newest first.
    name: '009_console_indexes',
    async up(db) {
      await db.schema.createIndex('devices_first_seen').on('devices').columns(['first_seen', 'id']).execute();
      await db.schema.createIndex('devices_name').on('devices').columns(['name', 'id']).execute();
      await db.schema.createIndex('devices_status_id').on('devices').columns(['status', 'id']).execute();
      await sql`create index devices_last_seen on devices ((coalesce(last_seen, '')), id)`.execute(db);
      await sql`create index devices_user_sort on devices ((coalesce(user_email, '')), id)`.execute(db);
      await db.schema.createIndex('certificates_serial_device').on('certificates').columns(['serial', 'device_id']).execute();
      await db.schema.createIndex('audit_action').on('audit').columns(['action', 'id']).execute();
      await db.schema.createIndex('audit_actor').on('audit').columns(['actor', 'id']).execute();
      await db.schema.createIndex('audit_target').on('audit').columns(['target', 'id']).execute();
      await db.schema.createIndex('audit_at').on('audit').column('at').execute();
    },
  },
  {
    // The gateways connected to each replica's /v1/events, as JSON written with
    // its heartbeat: the console's overview shows those of every live replica.
    name: '010_replica_gateways',
    async up(db) {
      await db.schema.alterTable('replicas').addColumn('gateways', 'text').execute();
    },
  },
  {
    // The console's device search (a substring of the name or the bound
    // email) through a trigram index instead of reading every device:
    // SQLite's FTS5 trigram tokenizer over the devices table (kept by
    // triggers), PostgreSQL's pg_trgm GIN indexes when the extension can be
    // had (it is trusted: the database owner may create it); without it the
    // search reads the table, as before.
    name: '011_devices_search',
    async up(db, engine) {
      if (engine === 'sqlite') {
        await sql`create virtual table devices_search using fts5(name, user_email, content='devices', content_rowid='rowid', tokenize='trigram')`.execute(db);
        await sql`create trigger devices_search_insert after insert on devices begin
          insert into devices_search(rowid, name, user_email) values (new.rowid, new.name, new.user_email); end`.execute(db);
        await sql`create trigger devices_search_delete after delete on devices begin
          insert into devices_search(devices_search, rowid, name, user_email) values ('delete', old.rowid, old.name, old.user_email); end`.execute(db);
        await sql`create trigger devices_search_update after update of name, user_email on devices begin
          insert into devices_search(devices_search, rowid, name, user_email) values ('delete', old.rowid, old.name, old.user_email);
          insert into devices_search(rowid, name, user_email) values (new.rowid, new.name, new.user_email); end`.execute(db);
        await sql`insert into devices_search(devices_search) values ('rebuild')`.execute(db);
        return;
      }
      const r = await sql<{ ok: boolean }>`select (exists (select 1 from pg_extension where extname = 'pg_trgm')
          or (exists (select 1 from pg_available_extensions where name = 'pg_trgm') and has_database_privilege(current_database(), 'CREATE'))) as ok`.execute(db);
      if (!r.rows[0]?.ok) return;
      await sql`create extension if not exists pg_trgm`.execute(db);
      await sql`create index devices_name_trgm on devices using gin (lower(name) gin_trgm_ops)`.execute(db);
      await sql`create index devices_user_email_trgm on devices using gin (user_email gin_trgm_ops)`.execute(db);
    },
  },
  {
    // Issue 14, policy and inventory: a group may require TPM-attested device
    // keys (and that the TPM's EK be registered); devices registered in
    // advance by the SHA-256 of their EK public key (SPKI DER).
    name: '012_attestation_policy',
    async up(db) {
      await db.schema.alterTable('groups').addColumn('attestation', 'text', (c) => c.notNull().defaultTo('none')).execute();
      await db.schema.alterTable('groups').addColumn('require_registered_ek', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema
        .createTable('registered_devices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('ek_hash', 'text', (c) => c.notNull().unique())
        .addColumn('ek_cert', 'text')
        .addColumn('manufacturer', 'text')
        .addColumn('name', 'text')
        .addColumn('group_name', 'text', (c) => c.references('groups.name'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('used_by_device', 'text')
        .execute();
      // The list pages by (created_at, id).
      await db.schema.createIndex('registered_devices_created').on('registered_devices').columns(['created_at', 'id']).execute();
    },
  },
  {
    // Issue 14, the attestation exchange: a challenge per TCG credential
    // activation (its secret only as SHA-256, single use), and what a
    // device's attestation proved (its TPM's EK, its AK, when).
    name: '013_attestation',
    async up(db) {
      await db.schema
        .createTable('attestation_challenges')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('token_id', 'text')
        .addColumn('device_id', 'text')
        .addColumn('ek_hash', 'text', (c) => c.notNull())
        .addColumn('ek_public', 'text', (c) => c.notNull())
        .addColumn('ek_cert', 'text')
        .addColumn('ek_trust', 'text', (c) => c.notNull())
        .addColumn('manufacturer', 'text')
        .addColumn('ak_public', 'text', (c) => c.notNull())
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('used_at', 'text')
        .execute();
      // A token's or a device's open challenges (the per-owner limit), and the expired ones (pruning).
      await db.schema.createIndex('attestation_challenges_token').on('attestation_challenges').columns(['token_id', 'created_at']).execute();
      await db.schema.createIndex('attestation_challenges_device').on('attestation_challenges').columns(['device_id', 'created_at']).execute();
      await db.schema.createIndex('attestation_challenges_expires').on('attestation_challenges').columns(['expires_at']).execute();
      for (const [name, type] of [
        ['ek_hash', 'text'],
        ['ek_public', 'text'],
        ['ek_cert', 'text'],
        ['ek_trust', 'text'],
        ['tpm_manufacturer', 'text'],
        ['ak_public', 'text'],
        ['attested_at', 'text'],
        // An attested enrollment waiting for approval: the verified attestation (JSON), applied when the device completes.
        ['pending_attestation', 'text'],
      ] as const) {
        await db.schema.alterTable('devices').addColumn(name, type).execute();
      }
      await db.schema.alterTable('devices').addColumn('assurance', 'text', (c) => c.notNull().defaultTo('software')).execute();
      // A live device per EK (requireRegisteredEk: an EK is not used by two devices).
      await db.schema.createIndex('devices_ek_hash').on('devices').column('ek_hash').execute();
    },
  },
];

/** The migrations' names, in the order they run. */
export const MIGRATION_NAMES: readonly string[] = MIGRATIONS.map((m) => m.name);

export async function migrate(db: Db): Promise<void> {
  const k = db.kysely as unknown as Kysely<{ latchkey_migrations: { name: string; applied_at: string } }>;
  await k.transaction().execute(async (trx) => {
    if (db.engine === 'postgres') await sql`select pg_advisory_xact_lock(7318001)`.execute(trx);
    await trx.schema
      .createTable('latchkey_migrations')
      .ifNotExists()
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('applied_at', 'text', (c) => c.notNull())
      .execute();
    const done = new Set((await trx.selectFrom('latchkey_migrations').select('name').execute()).map((r) => r.name));
    for (const m of MIGRATIONS) {
      if (done.has(m.name)) continue;
      await m.up(trx as unknown as Kysely<unknown>, db.engine);
      await trx.insertInto('latchkey_migrations').values({ name: m.name, applied_at: new Date().toISOString() }).execute();
    }
  });
}
