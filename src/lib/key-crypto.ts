/**
 * WebCrypto for signing keys, the same on Bun, Node, Deno and workerd: key pairs for ES256 (P-256) and EdDSA
 * (Ed25519), their RFC 7638 thumbprints, and the at-rest encryption of private halves with AES-256-GCM under
 * a key derived from SECRET_KEY with HKDF (RFC 5869).
 */
import { base64url } from './crypto';

export const ASYMMETRIC_ALGORITHMS = ['ES256', 'EdDSA'] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

/** A public JWK as the JWKS publishes it (RFC 7517 §4, RFC 7518 §6.2.1, RFC 8037 §2). */
export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  y?: string;
}

type KeyAlgorithm = Parameters<typeof crypto.subtle.importKey>[2];
type Bytes = Uint8Array<ArrayBuffer>;

const KEY_PARAMS: Record<AsymmetricAlgorithm, KeyAlgorithm> = {
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  EdDSA: { name: 'Ed25519' },
};

// RFC 7638 §3.2: the required members of each key type, in lexicographic order.
const THUMBPRINT_MEMBERS: Record<string, string[]> = { EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'] };

const encoder = new TextEncoder();

/** The RFC 7638 SHA-256 thumbprint of a public JWK: a stable `kid` that names the key by its content. */
export async function jwkThumbprint(jwk: PublicJwk): Promise<string> {
  const members = THUMBPRINT_MEMBERS[jwk.kty ?? ''];
  if (!members) throw new TypeError(`no thumbprint for key type ${jwk.kty}`);
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m as keyof PublicJwk]])));
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(canonical))));
}

export interface GeneratedKey {
  kid: string;
  /** Only the public members (kty, crv, x, y): what the JWKS publishes. */
  publicJwk: PublicJwk;
  /** PKCS #8 of the private key, to be encrypted before it is stored. */
  pkcs8: Bytes;
}

export async function generateSigningKey(alg: AsymmetricAlgorithm): Promise<GeneratedKey> {
  const pair = (await crypto.subtle.generateKey(KEY_PARAMS[alg], true, ['sign', 'verify'])) as CryptoKeyPair;
  const { kty, crv, x, y } = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as Partial<PublicJwk>;
  if (!kty || !crv || !x) throw new TypeError(`${alg}: the runtime exported an incomplete public key`);
  const publicJwk: PublicJwk = y === undefined ? { kty, crv, x } : { kty, crv, x, y };
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey('pkcs8', pair.privateKey)) as ArrayBuffer);
  return { kid: await jwkThumbprint(publicJwk), publicJwk, pkcs8 };
}

export const importPublicKey = (alg: AsymmetricAlgorithm, jwk: PublicJwk): Promise<CryptoKey> =>
  crypto.subtle.importKey('jwk', { ...jwk, ext: true }, KEY_PARAMS[alg], false, ['verify']);

export const importPrivateKey = (alg: AsymmetricAlgorithm, pkcs8: Bytes): Promise<CryptoKey> =>
  crypto.subtle.importKey('pkcs8', pkcs8, KEY_PARAMS[alg], false, ['sign']);

// HKDF's `info` names what the derived key is for, so a key derived from SECRET_KEY for one purpose can
// never decrypt another's data (RFC 5869 §3.2); the version lets a later format derive afresh.
const KEY_ENCRYPTION_INFO = 'hono-postgres-auth/signing-keys/v1';
const SEALED_PREFIX = 'v1';
const IV_BYTES = 12; // AES-GCM's standard nonce (NIST SP 800-38D §8.2)

/** The AES-256-GCM key that encrypts private keys at rest, derived from SECRET_KEY (never stored). */
export function deriveKeyEncryptionKey(secret: string, info = KEY_ENCRYPTION_INFO): Promise<CryptoKey> {
  return deriveFromSecret(secret, info, { name: 'AES-GCM', length: 256 }, ['encrypt', 'decrypt']);
}

/** An HMAC-SHA-256 key derived from SECRET_KEY for one purpose (`info`), as the encryption keys are. */
export function deriveHmacKey(secret: string, info: string): Promise<CryptoKey> {
  return deriveFromSecret(secret, info, { name: 'HMAC', hash: 'SHA-256', length: 256 }, ['sign']);
}

/** HKDF-SHA256 (RFC 5869) of the secret, bound to `info`, so keys for one purpose never open another's data. */
async function deriveFromSecret(
  secret: string,
  info: string,
  algorithm: Parameters<typeof crypto.subtle.deriveKey>[2],
  usages: Parameters<typeof crypto.subtle.deriveKey>[4],
): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey('raw', encoder.encode(secret), 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: encoder.encode(info) },
    material,
    algorithm,
    false,
    usages,
  );
}

/**
 * `v1.<iv>.<ciphertext+tag>`, base64url. `binding` (the key id) is the additional authenticated data, so a
 * sealed value moved onto another row does not decrypt.
 */
export async function seal(kek: CryptoKey, binding: string, plaintext: Bytes): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ciphertext = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: encoder.encode(binding) },
    kek,
    plaintext,
  );
  return [SEALED_PREFIX, base64url(iv), base64url(new Uint8Array(ciphertext))].join('.');
}

/** The plaintext of `seal`, or null when it was sealed under another key or for another binding, or is not ours. */
export async function unseal(kek: CryptoKey, binding: string, sealed: string): Promise<Bytes | null> {
  const [prefix, iv, ciphertext] = sealed.split('.');
  if (prefix !== SEALED_PREFIX || !iv || !ciphertext) return null;
  try {
    const plaintext = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: fromBase64url(iv), additionalData: encoder.encode(binding) },
      kek,
      fromBase64url(ciphertext),
    );
    return new Uint8Array(plaintext);
  } catch {
    return null;
  }
}

function fromBase64url(text: string): Bytes {
  const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
