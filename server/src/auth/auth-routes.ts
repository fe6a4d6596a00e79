/** `/v1/auth/*` (protocol/auth.ts): sign-in through the identity provider, in the public zone, rate-limited per address. */
import type { FastifyInstance } from 'fastify';
import { AUTH_PATHS, AuthBrowserFinish, AuthBrowserStart, AuthDevicePoll, AuthDeviceStart } from '@latchkey/protocol';
import { LatchkeyError } from '../errors.js';
import type { OidcVerifier } from '../oidc/oidc-verifier.js';
import { perAddress, registerRateLimit } from '../rate-limit.js';
import type { SignInService } from './sign-in-service.js';

/** Starts per address and minute: each reaches the IdP and holds a row until it expires. */
const STARTS_PER_MINUTE = 30;
/** Polls per address and minute: many people behind one NAT may be signing in at once. */
const POLLS_PER_MINUTE = 600;

export function authRoutes(deps: { signIn: SignInService | undefined; verifier: Pick<OidcVerifier, 'metadata'> | undefined }) {
  return async (app: FastifyInstance): Promise<void> => {
    await registerRateLimit(app);
    const start = { rateLimit: perAddress(STARTS_PER_MINUTE, 'too many sign-ins started from this address') };
    const poll = { rateLimit: perAddress(POLLS_PER_MINUTE, 'too many sign-in polls from this address') };
    const signIn = (): SignInService => {
      if (!deps.signIn) throw new LatchkeyError('NOT_FOUND', 'this server has no identity provider configured; enroll with a token from IT, or use an admin token');
      return deps.signIn;
    };

    // Discovery is cached only once it succeeds: bounded so a client cannot make us ask a failing IdP in a loop.
    app.get(AUTH_PATHS.providers, { config: poll }, async () => {
      const issuers = deps.signIn?.providers() ?? [];
      const providers = [];
      for (const issuer of issuers) {
        const m = await deps.verifier!.metadata(issuer);
        providers.push({ issuer, deviceFlow: m.deviceAuthorizationEndpoint !== undefined, browserFlow: m.authorizationEndpoint !== undefined });
      }
      return { providers };
    });
    app.post(AUTH_PATHS.deviceStart, { config: start, schema: { body: AuthDeviceStart } }, async (req) => {
      const b = req.body as AuthDeviceStart;
      return signIn().startDevice({ purpose: b.purpose, issuer: b.issuer, remote: req.ip });
    });
    app.post(AUTH_PATHS.devicePoll, { config: poll, schema: { body: AuthDevicePoll } }, async (req) => signIn().pollDevice((req.body as AuthDevicePoll).flowId));
    app.post(AUTH_PATHS.browserStart, { config: start, schema: { body: AuthBrowserStart } }, async (req) => {
      const b = req.body as AuthBrowserStart;
      return signIn().startBrowser({ purpose: b.purpose, issuer: b.issuer, redirectUri: b.redirectUri, codeChallenge: b.codeChallenge, remote: req.ip });
    });
    app.post(AUTH_PATHS.browserFinish, { config: start, schema: { body: AuthBrowserFinish } }, async (req) => signIn().finishBrowser(req.body as AuthBrowserFinish));
  };
}
