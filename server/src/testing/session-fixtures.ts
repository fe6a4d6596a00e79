/** A stored admin session for tests of the CLI's session store; `n` makes its secrets distinct. */
import type { StoredSession } from '../cli/session-store.js';

export const entry = (server: string, n = 1, over: Partial<StoredSession['session']> = {}): StoredSession => ({
  server,
  caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
  session: { token: `lk_ses_${String(n).padStart(43, 'a')}`, refreshToken: `lk_ref_${String(n).padStart(43, 'b')}`, expiresAt: '2026-12-01T11:00:00.000Z', refreshExpiresAt: '2026-12-01T22:00:00.000Z', role: 'operator', ...over },
  user: { email: 'ada@example.com', issuer: 'https://idp.example.com' },
});
