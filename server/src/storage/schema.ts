/**
 * Database tables as Kysely sees them. Times are ISO-8601 UTC strings
 * (`toISOString()`, which sort as they compare), certificates PEM text: both
 * portable across SQLite and PostgreSQL without per-engine codecs.
 */
import type { Generated } from 'kysely';

export interface GroupsTable {
  name: string;
  cert_lifetime_seconds: number;
  require_approval: number; // 0/1 on both engines
  created_at: string;
  /** `tpm`: only TPM-attested device keys enroll or renew (migration 012; default `none`). */
  attestation?: 'none' | 'tpm';
  /** 0/1: the device's EK must be in registered_devices (migration 012; default 0). */
  require_registered_ek?: number;
}

export interface EnrollTokensTable {
  id: string;
  secret_hash: string;
  group_name: string;
  uses: number;
  used_count: number;
  expires_at: string;
  revoked_at: string | null;
  created_at: string;
  created_by: string;
  /** Set for a token made by a sign-in (`/v1/auth`, purpose enroll): the device it makes is bound to this user. */
  user_id?: string | null;
}

/** Devices registered in advance by their TPM's endorsement key (`devices register`). */
export interface RegisteredDevicesTable {
  id: string;
  /** SHA-256 (lower-case hex) of the EK public key's SPKI DER; unique. */
  ek_hash: string;
  ek_cert: string | null;
  manufacturer: string | null;
  name: string | null;
  group_name: string | null;
  created_at: string;
  created_by: string;
  /** The device that enrolled with this EK, once one has. */
  used_by_device: string | null;
}

export interface DevicesTable {
  id: string;
  name: string;
  status: 'pending' | 'active' | 'revoked' | 'denied';
  group_name: string;
  token_id: string | null;
  /** SHA-256 of the SPKI a pending device asked with: the same request succeeds once approved. */
  pending_spki_hash: string | null;
  pending_csr: string | null;
  facts: string | null;
  /** The bound person's verified email (from the identity provider or an admin), lower case; never from facts. */
  user_email: string | null;
  user_id?: string | null;
  first_seen: string;
  last_seen: string | null;
  approved_at: string | null;
  approved_by: string | null;
  revoked_at: string | null;
  revocation_reason: string | null;
  /** `tpm-attested` once an attestation proved the key is in the TPM below (migration 013; default `software`). */
  assurance?: 'software' | 'tpm-attested';
  /** The attested device's TPM (migration 013): SHA-256 hex of the EK's SPKI, the EK as base64 TPM2B_PUBLIC, its certificate (PEM). */
  ek_hash?: string | null;
  ek_public?: string | null;
  ek_cert?: string | null;
  ek_trust?: 'certificate' | 'registered' | null;
  tpm_manufacturer?: string | null;
  /** The AK (base64 TPM2B_PUBLIC) whose binding to the EK the enrollment proved: every renewal is certified by it. */
  ak_public?: string | null;
  /** When the latest attested enrollment or renewal was verified. */
  attested_at?: string | null;
  /** A pending attested enrollment's verified attestation (JSON VerifiedAttestation), applied when it completes after approval. */
  pending_attestation?: string | null;
}

/** One TCG credential activation (migration 013): for an enrollment token or for a device; single use. */
export interface AttestationChallengesTable {
  id: string;
  token_id: string | null;
  device_id: string | null;
  ek_hash: string;
  /** base64 TPM2B_PUBLIC. */
  ek_public: string;
  ek_cert: string | null;
  ek_trust: 'certificate' | 'registered';
  manufacturer: string | null;
  /** base64 TPM2B_PUBLIC. */
  ak_public: string;
  /** SHA-256 hex of the secret; the secret itself is never stored. */
  secret_hash: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface CertificatesTable {
  serial: string;
  device_id: string;
  kind: 'enroll' | 'renew' | 'recover';
  not_before: string;
  not_after: string;
  spki_hash: string;
  pem: string;
  issued_at: string;
  /**
   * When the certificate is (or becomes) revoked. A renewal supersedes the device's other certificates
   * with a time in the future (the overlap): a CRL and OCSP treat it as revoked only from then on.
   */
  revoked_at: string | null;
  revocation_reason: string | null;
  /** The certificate a renewal or recovery authenticated with (null for an enrollment). */
  replaces_serial?: string | null;
}

/**
 * Work that a committed change still owes the outside world (a revocation's
 * CRL rebuild and event): written in the change's own transaction, done
 * right after COMMIT, and redone at start-up or by any replica's sweep if
 * the process died first. Deleted once done.
 */
export interface OutboxTable {
  id: Generated<number>;
  kind: 'revocation';
  device_id: string;
  reason: string;
  at: string;
  created_at: string;
  attempts: number;
}

/** SPKI hashes of every certificate of a device revoked for keyCompromise: refused at enrollment for good. */
export interface CompromisedKeysTable {
  spki_hash: string;
  device_id: string;
  recorded_at: string;
}

export interface AdminTokensTable {
  id: string;
  secret_hash: string;
  name: string;
  role: 'viewer' | 'operator' | 'admin';
  created_at: string;
  revoked_at: string | null;
  /** `bootstrap` (from init), `token` (an API token an admin made), `session` (a person signed in). */
  kind?: 'bootstrap' | 'token' | 'session';
  /** A session's person. */
  user_id?: string | null;
  created_by?: string | null;
  expires_at?: string | null;
  last_used_at?: string | null;
  /** A session's one-use refresh token (SHA-256) and its end. */
  refresh_hash?: string | null;
  refresh_expires_at?: string | null;
  /** A console session signed in with an admin token: that token (its revocation or end ends the session). */
  parent_id?: string | null;
}

/** A person from an identity provider, known since their first sign-in. Email is lower case. */
export interface UsersTable {
  id: string;
  issuer: string;
  subject: string;
  email: string;
  /** JSON array of the IdP groups at the last sign-in or sync. */
  groups: string;
  status: 'active' | 'removed' | 'disabled';
  /** The IdP's refresh token from the last sign-in, to ask the IdP about the person later (users sync). */
  idp_refresh_token: string | null;
  last_sign_in_at: string | null;
  last_synced_at: string | null;
  created_at: string;
}

/** A sign-in in progress (`/v1/auth`): id is the SHA-256 of the flow secret the client holds. */
export interface AuthFlowsTable {
  id: string;
  kind: 'device' | 'browser';
  purpose: 'admin' | 'enroll';
  issuer: string;
  /** The IdP's device_code (device flow). */
  device_code: string | null;
  nonce: string;
  state: string | null;
  code_challenge: string | null;
  redirect_uri: string | null;
  interval_seconds: number;
  next_poll_at: string;
  expires_at: string;
  created_at: string;
  remote: string;
}

export interface AuditTable {
  id: Generated<number>;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  details: string;
}

export interface CrlStateTable {
  ca: 'issuing' | 'root';
  crl_number: number;
  this_update: string;
  next_update: string;
  der_base64: string;
  /** The newest revocation time the CRL includes, to know when it is stale. */
  revision: number;
}

export interface EventsTable {
  id: Generated<number>;
  at: string;
  type: string;
  payload: string;
}

/** Tokens of gateways (`/v1/events`, `gateway sync`): only the SHA-256 of the secret is kept. */
export interface GatewayTokensTable {
  id: string;
  secret_hash: string;
  name: string;
  created_at: string;
  created_by: string;
  revoked_at: string | null;
}

/** A running server process (replica), for presence: its rows count while it keeps seen_at fresh. */
export interface ReplicasTable {
  id: string;
  started_at: string;
  seen_at: string;
  /** The gateway streams this replica holds (JSON GatewayStreamSnapshot[]), as of its last heartbeat. */
  gateways?: string | null;
}

/** One open agent control channel, on the replica that holds it. */
export interface AgentSessionsTable {
  id: string;
  replica_id: string;
  device_id: string;
  since: string;
  agent_version: string | null;
  serial: string;
  remote: string;
}

export interface Database {
  groups: GroupsTable;
  enroll_tokens: EnrollTokensTable;
  devices: DevicesTable;
  certificates: CertificatesTable;
  admin_tokens: AdminTokensTable;
  audit: AuditTable;
  crl_state: CrlStateTable;
  events: EventsTable;
  gateway_tokens: GatewayTokensTable;
  replicas: ReplicasTable;
  agent_sessions: AgentSessionsTable;
  outbox: OutboxTable;
  compromised_keys: CompromisedKeysTable;
  users: UsersTable;
  auth_flows: AuthFlowsTable;
  registered_devices: RegisteredDevicesTable;
  attestation_challenges: AttestationChallengesTable;
}
