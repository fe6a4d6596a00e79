/**
 * The admin web console (issue 13), on the server's own origin: the pages
 * (one HTML shell; the client routes), their hashed assets, and
 * `/v1/console/*`, which signs a browser in and out. Everything else the
 * console does goes through the admin API (`/v1/admin`) with the session
 * cookie and a CSRF header, so roles are decided in one place.
 *
 * Sign-in: through the identity provider (authorization code + PKCE; the
 * server is the OAuth client, the code's verifier waits in a short HttpOnly
 * cookie), or with an admin token while no identity provider is configured.
 * The session lives in an HttpOnly, Secure, SameSite=Strict `__Host-`
 * cookie; no script ever sees a secret.
 */
import { createHash, randomBytes } from 'node:crypto';
import helmet from '@fastify/helmet';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConsoleSession, ConsoleSignInOptions } from '@latchkey/protocol';
import { Type } from '@sinclair/typebox';
import type { AdminSessions } from '../admin/admin-sessions.js';
import type { AdminTokensRepo } from '../admin/admin-tokens-repo.js';
import type { FailureLimit } from '../admin/admin-auth.js';
import { actorOf } from '../admin/admin-auth.js';
import { hashSecret } from '../auth/secret-hash.js';
import { clearCookie, CONSOLE_COOKIE, csrfTokenOf, readCookie, setCookie, SIGN_IN_COOKIE } from '../auth/console-cookie.js';
import type { SignInService } from '../auth/sign-in-service.js';
import { LatchkeyError } from '../errors.js';
import { perAddress, registerRateLimit } from '../rate-limit.js';
import { type ConsoleAssets, type ConsoleFile, pickEncoding } from './console-assets.js';
import { CONSOLE_PAGES, CONSOLE_PATHS, CSP_DIRECTIVES, localPath, signInErrorUrl } from './console-fns.js';

/** A console session signed in with an admin token lasts a working day (never past the token's own end). */
export const TOKEN_SESSION_SECONDS = 8 * 3600;
/** How long an IdP sign-in started from the console may take. */
const SIGN_IN_COOKIE_SECONDS = 600;
/** Sign-in attempts per address and minute (each IdP start holds a flow row; each token try is a lookup). */
const SIGN_INS_PER_MINUTE = 30;

export interface ConsoleDeps {
  assets: ConsoleAssets;
  /** The server's public URL: the IdP returns to `<url>/v1/console/sign-in/callback`. */
  url: string;
  /** SHA-256 of the root CA certificate, for the enroll command the console shows. */
  rootFingerprint: string;
  /** Whether an identity provider is configured (then the admin-token sign-in is off). */
  idpConfigured: boolean;
  signIn: SignInService | undefined;
  adminTokens: Pick<AdminTokensRepo, 'findByHash'>;
  sessions: Pick<AdminSessions, 'issueForToken' | 'end'>;
  /** The admin zone's auth hook (bearer or console cookie, roles, CSRF). */
  authHook: (failures: FailureLimit) => (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
  clock: () => Date;
}

function send(req: FastifyRequest, reply: FastifyReply, f: ConsoleFile, cache: string): FastifyReply {
  const enc = pickEncoding(req.headers['accept-encoding'] as string | undefined);
  reply.header('content-type', f.type).header('cache-control', cache).header('vary', 'accept-encoding');
  if (enc) reply.header('content-encoding', enc);
  return reply.send(enc === 'br' ? f.br : enc === 'gzip' ? f.gzip : f.body);
}

const sessionCookie = (secret: string, expiresAt: string, now: Date): string =>
  setCookie(CONSOLE_COOKIE, secret, { sameSite: 'Strict', maxAge: Math.max(1, (Date.parse(expiresAt) - now.getTime()) / 1000) });

const b64 = (s: string): string => Buffer.from(s).toString('base64url');
const unb64 = (s: string): string => Buffer.from(s, 'base64url').toString();

export function consoleRoutes(d: ConsoleDeps) {
  return async (app: FastifyInstance): Promise<void> => {
    await registerRateLimit(app);
    // The security headers of helmet on every console answer, with a CSP that allows no inline script or style.
    await app.register(helmet, {
      contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
      strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: false },
    });
    const signInLimit = { rateLimit: perAddress(SIGN_INS_PER_MINUTE, 'too many sign-ins from this address') };
    const failures = app.createRateLimit(perAddress(SIGN_INS_PER_MINUTE, ''));

    // ---- pages and assets
    const page = async (req: FastifyRequest, reply: FastifyReply) => {
      if (!d.assets.shell) {
        return reply.code(503).header('content-type', 'text/plain; charset=utf-8').send(`The admin console was not built (looked in ${d.assets.dir}). Run \`pnpm build\` in the repository, then restart the server.\n`);
      }
      return send(req, reply, d.assets.shell, 'no-store');
    };
    for (const p of CONSOLE_PAGES) app.get(p, page);
    app.get(`${CONSOLE_PATHS.assets}/:name`, { schema: { params: Type.Object({ name: Type.String({ maxLength: 100 }) }) } }, async (req, reply) => {
      const f = d.assets.asset((req.params as { name: string }).name);
      if (!f) throw new LatchkeyError('NOT_FOUND', 'no such console asset; reload the console (the server may have been upgraded)');
      return send(req, reply, f, 'public, max-age=31536000, immutable');
    });

    // ---- signing in
    app.get(CONSOLE_PATHS.signInOptions, { schema: { response: { 200: ConsoleSignInOptions } } }, async (): Promise<ConsoleSignInOptions> => ({
      providers: (d.signIn?.providers() ?? []).map((issuer) => ({ issuer, name: new URL(issuer).host })),
      tokenSignIn: !d.idpConfigured,
    }));

    app.post(CONSOLE_PATHS.signInToken, { config: signInLimit, schema: { body: Type.Object({ token: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }) } }, async (req, reply) => {
      if (d.idpConfigured) throw new LatchkeyError('CONFLICT', 'this server signs people in through the identity provider; use its sign-in button (admin tokens are for the API and automation)');
      const row = await d.adminTokens.findByHash(hashSecret((req.body as { token: string }).token));
      const now = d.clock();
      if (!row || row.kind === 'session') {
        const limit = await failures(req);
        if (!limit.isAllowed && limit.isExceeded) throw new LatchkeyError('RATE_LIMITED', 'too many failed sign-ins from this address; wait a minute', { headers: { 'retry-after': String(Math.max(1, limit.ttlInSeconds)) } });
        throw new LatchkeyError('UNAUTHORIZED', 'that admin token is not valid; the bootstrap token is in the data directory (`admin-token`), or an admin makes one with `latchkey-server admin-token create`');
      }
      if (row.revoked_at) throw new LatchkeyError('UNAUTHORIZED', `the admin token "${row.name}" was revoked at ${row.revoked_at}`);
      if (row.expires_at && Date.parse(row.expires_at) <= now.getTime()) throw new LatchkeyError('UNAUTHORIZED', `the admin token "${row.name}" expired at ${row.expires_at}`);
      const s = await d.sessions.issueForToken(row, TOKEN_SESSION_SECONDS);
      return reply.header('set-cookie', sessionCookie(s.token, s.expiresAt, now)).code(204).send();
    });

    app.get(
      CONSOLE_PATHS.signInSso,
      { config: signInLimit, schema: { querystring: Type.Object({ issuer: Type.Optional(Type.String({ maxLength: 300 })), next: Type.Optional(Type.String({ maxLength: 300 })) }) } },
      async (req, reply) => {
        const q = req.query as { issuer?: string; next?: string };
        const next = localPath(q.next);
        try {
          if (!d.signIn) throw new LatchkeyError('NOT_FOUND', 'this server has no identity provider configured; sign in with an admin token');
          const verifier = randomBytes(32).toString('base64url');
          const challenge = createHash('sha256').update(verifier).digest('base64url');
          const started = await d.signIn.startBrowser({ purpose: 'admin', issuer: q.issuer, redirectUri: `${d.url}${CONSOLE_PATHS.signInCallback}`, codeChallenge: challenge, remote: req.ip });
          return reply
            .header('set-cookie', setCookie(SIGN_IN_COOKIE, `${started.flowId}.${verifier}.${b64(next)}`, { sameSite: 'Lax', maxAge: SIGN_IN_COOKIE_SECONDS }))
            .header('cache-control', 'no-store')
            .redirect(started.authorizeUrl, 302);
        } catch (e) {
          req.log.warn({ err: e }, 'a console sign-in through the identity provider failed');
          return reply.redirect(signInErrorUrl(e, next), 302);
        }
      },
    );

    app.get(
      CONSOLE_PATHS.signInCallback,
      { config: signInLimit, schema: { querystring: Type.Object({ code: Type.Optional(Type.String({ maxLength: 2000 })), state: Type.Optional(Type.String({ maxLength: 200 })), error: Type.Optional(Type.String({ maxLength: 200 })), error_description: Type.Optional(Type.String({ maxLength: 500 })) }) } },
      async (req, reply) => {
        const q = req.query as { code?: string; state?: string; error?: string; error_description?: string };
        const [flowId, verifier, nextB64] = (readCookie(req.headers, SIGN_IN_COOKIE) ?? '').split('.');
        const next = localPath(nextB64 ? unb64(nextB64) : undefined);
        // The flow is used once, whatever happens now.
        reply.header('set-cookie', clearCookie(SIGN_IN_COOKIE, 'Lax')).header('cache-control', 'no-store');
        try {
          if (q.error) throw new LatchkeyError('AUTH_DENIED', `the identity provider did not sign you in: ${q.error_description ?? q.error}`);
          if (!flowId || !verifier) throw new LatchkeyError('AUTH_EXPIRED', 'this sign-in was not started in this browser, or took longer than 10 minutes; start it again');
          if (!q.code || !q.state) throw new LatchkeyError('BAD_REQUEST', 'the identity provider sent no code; start the sign-in again');
          const r = await d.signIn!.finishBrowser({ flowId, code: q.code, state: q.state, codeVerifier: verifier });
          if (r.purpose !== 'admin') throw new LatchkeyError('BAD_REQUEST', 'this sign-in was not for the console');
          reply.header('set-cookie', [clearCookie(SIGN_IN_COOKIE, 'Lax'), sessionCookie(r.session.token, r.session.expiresAt, d.clock())]);
          return reply.redirect(next, 302);
        } catch (e) {
          req.log.warn({ err: e }, 'a console sign-in through the identity provider failed');
          return reply.redirect(signInErrorUrl(e, next), 302);
        }
      },
    );

    // ---- the signed-in browser (the admin zone's hook: cookie or bearer, CSRF on changes)
    await app.register(async (authed) => {
      authed.addHook('onRequest', d.authHook(failures));
      authed.get(CONSOLE_PATHS.session, { config: { minRole: 'viewer' }, schema: { response: { 200: ConsoleSession } } }, async (req): Promise<ConsoleSession> => {
        const a = req.admin!;
        return {
          actor: actorOf(req),
          role: a.role,
          kind: a.kind === 'session' ? 'session' : 'token',
          user: a.user,
          expiresAt: a.expiresAt,
          csrfToken: req.consoleSecret ? csrfTokenOf(req.consoleSecret) : null,
          serverUrl: d.url,
          caFingerprint: d.rootFingerprint,
        };
      });
      authed.post(CONSOLE_PATHS.signOut, { config: { minRole: 'viewer' } }, async (req, reply) => {
        if (!req.consoleSecret) throw new LatchkeyError('BAD_REQUEST', 'sign-out ends a console session; this request did not come with one (a bearer token is revoked with `latchkey-server admin-token revoke`)');
        await d.sessions.end(req.consoleSecret);
        return reply.header('set-cookie', clearCookie(CONSOLE_COOKIE, 'Strict')).code(204).send();
      });
    });
  };
}
