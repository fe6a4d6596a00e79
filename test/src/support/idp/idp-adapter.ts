/**
 * A small in-memory storage adapter for oidc-provider, shared by every
 * Provider instance of the process. oidc-provider 9's default memory adapter
 * keeps one store per Provider instance (lib/helpers/initialize_adapter.js
 * calls createMemoryAdapter() for each), and rotating the signing keys means
 * building a new instance (the keystore is fixed at construction): with this
 * adapter, sessions, interactions, grants, device codes and refresh tokens
 * made before a rotation still work after it.
 */
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  /** ms since the epoch; Infinity when the model gave no lifetime. */
  expiresAt: number;
}

/** Models whose rows belong to a grant (revokeByGrantId removes them all). */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

export function createSharedMemoryAdapter(): AdapterFactory {
  const rows = new Map<string, Entry>();
  const byUserCode = new Map<string, string>();
  const byUid = new Map<string, string>();
  const byGrant = new Map<string, Set<string>>();

  const live = (key: string | undefined): AdapterPayload | undefined => {
    if (key === undefined) return undefined;
    const e = rows.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      rows.delete(key);
      return undefined;
    }
    return e.payload;
  };

  return (model: string): Adapter => {
    const key = (id: string): string => `${model}:${id}`;
    return {
      async upsert(id, payload, expiresIn) {
        rows.set(key(id), { payload, expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity });
        if (payload.userCode) byUserCode.set(payload.userCode, key(id));
        if (model === 'Session' && payload.uid) byUid.set(payload.uid, key(id));
        if (GRANTABLE.has(model) && payload.grantId) {
          const members = byGrant.get(payload.grantId) ?? new Set<string>();
          members.add(key(id));
          byGrant.set(payload.grantId, members);
        }
      },
      async find(id) {
        return live(key(id));
      },
      async findByUserCode(userCode) {
        return live(byUserCode.get(userCode));
      },
      async findByUid(uid) {
        return live(byUid.get(uid));
      },
      async consume(id) {
        const p = live(key(id));
        if (p) p.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id) {
        rows.delete(key(id));
      },
      async revokeByGrantId(grantId) {
        for (const k of byGrant.get(grantId) ?? []) rows.delete(k);
        byGrant.delete(grantId);
      },
    };
  };
}
