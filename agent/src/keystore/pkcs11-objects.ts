/**
 * The objects of a pkcs11 device key on the token: a key pair, private and
 * public object both labelled `latchkey:<namespace>:<keyId>`, both with
 * CKA_ID = SHA-1 of the EC point (04||X||Y), the id NSS looks a certificate's
 * key up by (PK11_MakeIDFromPubKey), so a browser finds the key on the token
 * for the certificate the agent imports. Keys made before carry
 * node-webcrypto-p11's own id (SHA-1 of the SPKI, 16 bytes); they still load,
 * as the store finds keys by label and the engine names a key by the CKA_ID it
 * reads from it.
 */
import { type CryptoKey as P11CryptoKey, TemplateBuilder, type ITemplate, type ITemplateBuildParameters, type Pkcs11EcKeyGenParams } from 'node-webcrypto-p11';
import { keyIdentifier } from '@latchkey/pki';
import { type DeviceKeyAlgorithm, KeystoreError } from './keystore.js';
import { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, type P11Object, pkcs11Message } from './pkcs11-module.js';
import type { OpenToken } from './pkcs11-token.js';

/**
 * node-webcrypto-p11's templates name every usage, most of them `false`;
 * tpm2-pkcs11 refuses some explicit `false` attributes (CKR_ATTRIBUTE_VALUE_INVALID).
 * Keep only what we mean: a token object, a private key that is private,
 * sensitive and not extractable, and the sign / verify usages.
 */
export class DeviceKeyTemplateBuilder extends TemplateBuilder {
  override build(params: ITemplateBuildParameters): ITemplate {
    const t = super.build(params) as Record<string, unknown>;
    for (const k of Object.keys(t)) if (t[k] === false) delete t[k];
    if (params.type === 'private') {
      t.sensitive = true;
      t.extractable = false;
    }
    return t as ITemplate;
  }
}

/**
 * The CKA_ID NSS pairs a certificate with its key by: SHA-1 of the EC public
 * point, the subjectPublicKey bits of the SPKI (NSS PK11_MakeIDFromPubKey over
 * the key's publicValue; the same bytes as RFC 5280 §4.2.1.2 method 1).
 */
const nssKeyId = (spki: Uint8Array): Buffer => keyIdentifier(spki);

export function findObjects(st: OpenToken, cls: number, label: string): P11Object[] {
  const found = st.session.find({ class: cls, token: true, label });
  const out: P11Object[] = [];
  for (let i = 0; i < found.length; i++) out.push(found.items(i));
  return out;
}

/** node-webcrypto-p11's key storage index for an object ("private-<handle>-<id>"). */
function webCryptoKeyId(o: P11Object): string {
  const cls = o.class === CKO_PRIVATE_KEY ? 'private' : 'public';
  const id = o.getAttribute({ id: null }).id as Buffer;
  return `${cls}-${o.handle.toString('hex')}-${id.toString('hex')}`;
}

export const keyOf = async (st: OpenToken, o: P11Object): Promise<P11CryptoKey> => (await st.crypto.keyStorage.getItem(webCryptoKeyId(o))) as P11CryptoKey;

const destroyQuietly = (objs: P11Object[]): void => {
  for (const o of objs) {
    try {
      o.destroy();
    } catch {
      // gone already
    }
  }
};

/**
 * A new key pair labelled `label`, checked sensitive and non-extractable, with
 * the NSS CKA_ID on both objects; a pair that fails a check is destroyed.
 * `failed` turns a token error into the store's error.
 */
export async function generateKeyPair(st: OpenToken, algorithm: DeviceKeyAlgorithm, label: string, tokenName: string, failed: (what: string, e: unknown) => KeystoreError): Promise<{ priv: P11Object; pub: P11Object }> {
  try {
    await st.crypto.subtle.generateKey(
      { name: 'ECDSA', namedCurve: algorithm, label, token: true, sensitive: true } as Pkcs11EcKeyGenParams & { name: string },
      false,
      ['sign', 'verify'],
    );
  } catch (e) {
    throw failed(`generating an ECDSA ${algorithm} key`, e);
  }
  const [priv] = findObjects(st, CKO_PRIVATE_KEY, label);
  const [pub] = findObjects(st, CKO_PUBLIC_KEY, label);
  if (!priv || !pub) throw new KeystoreError('KEYSTORE_FAILED', `${tokenName} did not keep the key pair it generated (${label})`);
  const attrs = priv.getAttribute({ extractable: null, sensitive: null });
  if (attrs.extractable !== false || attrs.sensitive !== true) {
    for (const o of [priv, pub]) o.destroy();
    throw new KeystoreError('KEYSTORE_FAILED', `${tokenName} made an extractable or non-sensitive private key; the pkcs11 keystore needs a token that keeps keys inside`);
  }
  // The id is known only once the key exists: set it on both objects
  // (C_SetAttributeValue; SoftHSM2 and tpm2-pkcs11 take it, as they take
  // node-webcrypto-p11's own id set the same way inside generateKey).
  try {
    const id = nssKeyId(Buffer.from(await st.crypto.subtle.exportKey('spki', await keyOf(st, pub))));
    for (const o of [priv, pub]) o.setAttribute({ id });
    for (const o of [priv, pub]) {
      if (!Buffer.from(o.getAttribute({ id: null }).id as Buffer).equals(id)) throw new Error('the token kept another CKA_ID');
    }
  } catch (e) {
    destroyQuietly([priv, pub]);
    throw new KeystoreError('KEYSTORE_FAILED', `${tokenName} did not let the new key take the CKA_ID browsers (NSS) find it by, SHA-1 of its public key (${pkcs11Message(e)}); the key was deleted`, { cause: e });
  }
  return { priv, pub };
}

/** The key ids of every private key whose label starts with `prefix`, as `isKeyId` accepts them. */
export function listLabelledKeyIds(st: OpenToken, prefix: string, isKeyId: (s: string) => boolean): string[] {
  const found = st.session.find({ class: CKO_PRIVATE_KEY, token: true });
  const ids: string[] = [];
  for (let i = 0; i < found.length; i++) {
    const label = String(found.items(i).getAttribute({ label: null }).label ?? '');
    if (!label.startsWith(prefix)) continue;
    const id = label.slice(prefix.length);
    if (isKeyId(id)) ids.push(id);
  }
  return ids;
}

/**
 * tpm2_ptool link stores the text of its --id argument as CKA_ID (the ASCII
 * of the hex digits, not the bytes they spell). A key linked by the agent's
 * attested path (agent/src/attest/tpm-key.ts) is given the NSS id that way;
 * the first load turns it into the bytes (C_SetAttributeValue, as
 * generateKeyPair does), so a browser finds the key like any other.
 */
export function adoptLinkedKeyId(priv: P11Object, pub: P11Object, spki: Uint8Array): void {
  const want = nssKeyId(spki);
  const have = Buffer.from(priv.getAttribute({ id: null }).id as Buffer);
  if (have.equals(want) || have.toString('latin1') !== want.toString('hex')) return;
  for (const o of [priv, pub]) o.setAttribute({ id: want });
}
