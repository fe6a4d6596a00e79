/** What the OIDC verifier needs from config, and what it answers. */

export interface OidcIssuerSettings {
  readonly issuer: string;
  readonly clientId: string;
  /** Set for a confidential client; the verifier never logs it. */
  readonly clientSecret?: string | undefined;
  readonly emailClaim: string;
  readonly groupsClaim: string;
  /** Accept an ID token without `email_verified` (a provider that only issues emails of its own domains, e.g. Entra ID). */
  readonly trustEmail?: boolean | undefined;
}

/** A verified person, as the ID token names them. */
export interface VerifiedIdentity {
  readonly issuer: string;
  readonly subject: string;
  readonly email: string;
  readonly groups: string[];
  /** The provider referenced the groups instead of listing them (too many): they are unknown, not empty. */
  readonly groupsUnknown?: boolean;
}
