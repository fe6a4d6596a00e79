/**
 * `latchkey enroll --sso`: sign in at the server's identity provider (the
 * device flow or the browser flow, sso-fns.ts `chooseFlow`) and get the
 * one-use enrollment token bound to the person; enroll.ts then enrolls with
 * it exactly as with `--token`.
 */
import { AUTH_PATHS } from '@latchkey/protocol';
import { AgentError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { authApi, readOr, refused } from './sso-api.js';
import { browserSignIn } from './sso-browser.js';
import { deviceSignIn } from './sso-device.js';
import { type EnrollGrant, NO_PROVIDER, type Provider, type SsoFlow, chooseFlow, readProviders, signedInLine } from './sso-fns.js';

export interface SsoOptions {
  /** `--sso-flow`: forced; otherwise chosen by the desktop session. */
  flow?: SsoFlow;
  /** `--sso-issuer`: which provider, when the server has several. */
  issuer?: string;
  log: (line: string) => void;
  clock: Pick<Clock, 'now' | 'sleep'>;
  host: { platform: NodeJS.Platform; env: NodeJS.ProcessEnv };
}

/** The provider to sign in with, and by which flow. */
export function pickProvider(providers: Provider[], o: Pick<SsoOptions, 'flow' | 'issuer' | 'host'>): { provider: Provider; flow: SsoFlow } {
  if (providers.length === 0) throw new AgentError('SERVER_REFUSED', NO_PROVIDER);
  const names = providers.map((p) => p.issuer).join(', ');
  let provider: Provider | undefined;
  if (o.issuer) {
    provider = providers.find((p) => p.issuer === o.issuer);
    if (!provider) throw new AgentError('USAGE', `--sso-issuer ${o.issuer} is not an identity provider of this server; it has: ${names}`);
  } else if (providers.length === 1) provider = providers[0]!;
  else throw new AgentError('USAGE', `this server has several identity providers (${names}); choose one with --sso-issuer URL`);
  const offers = (f: SsoFlow): boolean => (f === 'device' ? provider.deviceFlow : provider.browserFlow);
  const wanted = chooseFlow(o.host, o.flow);
  if (offers(wanted)) return { provider, flow: wanted };
  const other: SsoFlow = wanted === 'device' ? 'browser' : 'device';
  if (!o.flow && offers(other)) return { provider, flow: other };
  const flag = (f: SsoFlow): string => `--sso-flow ${f}`;
  throw new AgentError('USAGE', `the identity provider ${provider.issuer} does not offer the ${wanted} sign-in${offers(other) ? `; use ${flag(other)}` : ' nor the other one; ask IT for an enrollment token'}`);
}

/** Signs in through `server` (trusting only `rootPem`, the pinned root) and returns the enrollment grant. */
export async function signInToEnroll(server: string, rootPem: string, o: SsoOptions): Promise<EnrollGrant> {
  const api = authApi(server, rootPem);
  const list = await api.get(AUTH_PATHS.providers);
  // A server from before sign-in existed has no such route.
  if (list.status === 404) throw new AgentError('SERVER_REFUSED', NO_PROVIDER, { status: 404, serverCode: list.error?.code ?? '' });
  if (list.status !== 200) throw refused(list, 'asking for the identity providers');
  const { provider, flow } = pickProvider(readOr(list, readProviders), o);
  const common = { ...(o.issuer ? { issuer: provider.issuer } : {}), log: o.log, clock: o.clock };
  const grant = flow === 'device' ? await deviceSignIn(api, common) : await browserSignIn(api, { ...common, host: o.host });
  o.log(signedInLine(grant));
  return grant;
}
