/**
 * A software WebAuthn authenticator for the tests: ES256 keys from node:crypto, "none" attestation, and the
 * authenticator data and client data a browser and a CTAP2 authenticator would produce (WebAuthn L3 §6.1,
 * §6.5, §5.8.1). Every field a relying party checks can be set wrong on purpose, so each guard of the
 * service has a response that only that guard refuses.
 */
import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';

// --- a minimal CBOR encoder (RFC 8949): what COSE keys and attestation objects need -------------------------

export type Cbor = number | string | Uint8Array | Map<number | string, Cbor>;

function head(major: number, length: number): number[] {
  if (length < 24) return [(major << 5) | length];
  if (length < 0x100) return [(major << 5) | 24, length];
  if (length < 0x10000) return [(major << 5) | 25, length >> 8, length & 0xff];
  return [(major << 5) | 26, (length >>> 24) & 0xff, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff];
}

export function encodeCbor(value: Cbor): Uint8Array {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error('only integers');
    return new Uint8Array(value >= 0 ? head(0, value) : head(1, -1 - value)); // major 1 encodes -1 - n
  }
  if (typeof value === 'string') {
    const bytes = new TextEncoder().encode(value);
    return concat(new Uint8Array(head(3, bytes.length)), bytes);
  }
  if (value instanceof Uint8Array) return concat(new Uint8Array(head(2, value.length)), value);
  const parts: Uint8Array[] = [new Uint8Array(head(5, value.size))];
  for (const [key, item] of value) parts.push(encodeCbor(key), encodeCbor(item));
  return concat(...parts);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const sha256 = (data: Uint8Array | string) => new Uint8Array(createHash('sha256').update(data).digest());

// --- authenticator data (WebAuthn §6.1) ----------------------------------------------------------------------

export const FLAGS = { UP: 0x01, UV: 0x04, BE: 0x08, BS: 0x10, AT: 0x40 } as const;

function authenticatorData({
  rpId,
  flags,
  counter,
  attested,
}: {
  rpId: string;
  flags: number;
  counter: number;
  attested?: { credentialId: Uint8Array; cosePublicKey: Uint8Array };
}): Uint8Array {
  const counterBytes = new Uint8Array(4);
  new DataView(counterBytes.buffer).setUint32(0, counter);
  const parts: Uint8Array[] = [sha256(rpId), new Uint8Array([flags]), counterBytes];
  if (attested) {
    const length = new Uint8Array([attested.credentialId.length >> 8, attested.credentialId.length & 0xff]);
    parts.push(new Uint8Array(16), length, attested.credentialId, attested.cosePublicKey); // AAGUID: all zero
  }
  return concat(...parts);
}

/** The COSE_Key of an ES256 public key (RFC 9053 §7.1.1): kty EC2, alg ES256, crv P-256, x, y. */
function coseKey(publicKey: KeyObject): Uint8Array {
  const jwk = publicKey.export({ format: 'jwk' });
  return encodeCbor(
    new Map<number, Cbor>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, Buffer.from(jwk.x as string, 'base64url')],
      [-3, Buffer.from(jwk.y as string, 'base64url')],
    ]),
  );
}

// --- the authenticator ------------------------------------------------------------------------------------

export interface StoredCredential {
  id: Uint8Array;
  privateKey: KeyObject;
  rpId: string;
  userHandle: string;
  counter: number;
}

/** What a test may set wrong (or differently) in one response. */
export interface Overrides {
  flags?: number;
  origin?: string;
  /** The RP id whose hash goes into the authenticator data. */
  rpId?: string;
  counter?: number;
  type?: string;
  challenge?: string;
  userHandle?: string;
}

interface CreationOptions {
  challenge: string;
  rp: { id?: string; name: string };
  user: { id: string; name: string };
  excludeCredentials?: { id: string }[];
}

interface RequestOptions {
  challenge: string;
  rpId?: string;
  allowCredentials?: { id: string }[];
}

export class SoftwareAuthenticator {
  readonly credentials: StoredCredential[] = [];

  /**
   * @param origin the page's origin, as a browser reports it in the client data
   * @param counterStep how much the sign counter grows per assertion; 0 for an authenticator that keeps none
   *   (as synced passkeys do), so only the challenge stops a replay
   */
  constructor(
    readonly origin: string,
    readonly counterStep = 1,
  ) {}

  /** navigator.credentials.create(): a new ES256 credential, "none" attestation, as toJSON() gives it. */
  create(options: CreationOptions, overrides: Overrides = {}) {
    const rpId = options.rp.id ?? new URL(this.origin).hostname;
    const held = new Set(this.credentials.map((credential) => b64url(credential.id)));
    if (options.excludeCredentials?.some((excluded) => held.has(excluded.id))) {
      throw new Error('InvalidStateError: this authenticator holds an excluded credential');
    }
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const credential: StoredCredential = {
      id: new Uint8Array(randomBytes(32)),
      privateKey,
      rpId,
      userHandle: options.user.id,
      counter: 0,
    };
    this.credentials.push(credential);
    const clientDataJSON = this.clientData('webauthn.create', options.challenge, overrides);
    const authData = authenticatorData({
      rpId: overrides.rpId ?? rpId,
      flags: overrides.flags ?? FLAGS.UP | FLAGS.UV | FLAGS.AT,
      counter: overrides.counter ?? credential.counter,
      attested: { credentialId: credential.id, cosePublicKey: coseKey(publicKey) },
    });
    const attestationObject = encodeCbor(
      new Map<string, Cbor>([
        ['fmt', 'none'],
        ['attStmt', new Map()],
        ['authData', authData],
      ]),
    );
    return {
      id: b64url(credential.id),
      rawId: b64url(credential.id),
      type: 'public-key' as const,
      authenticatorAttachment: 'platform' as const,
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64url(clientDataJSON),
        attestationObject: b64url(attestationObject),
        transports: ['internal'],
      },
    };
  }

  /**
   * navigator.credentials.get(): signs with the first held credential the options allow (any of the RP's when
   * they list none: a discoverable credential), or with `credential` when given.
   */
  get(options: RequestOptions, overrides: Overrides = {}, credential?: StoredCredential) {
    const rpId = options.rpId ?? new URL(this.origin).hostname;
    const allowed = options.allowCredentials?.length ? new Set(options.allowCredentials.map((c) => c.id)) : null;
    const chosen =
      credential ??
      this.credentials.find((held) => held.rpId === rpId && (allowed === null || allowed.has(b64url(held.id))));
    if (!chosen) throw new Error('NotAllowedError: no credential for these options');
    chosen.counter += this.counterStep;
    const clientDataJSON = this.clientData('webauthn.get', options.challenge, overrides);
    const authData = authenticatorData({
      rpId: overrides.rpId ?? rpId,
      flags: overrides.flags ?? FLAGS.UP | FLAGS.UV,
      counter: overrides.counter ?? chosen.counter,
    });
    const signature = sign('sha256', concat(authData, sha256(clientDataJSON)), chosen.privateKey); // DER (§6.5.6)
    return {
      id: b64url(chosen.id),
      rawId: b64url(chosen.id),
      type: 'public-key' as const,
      authenticatorAttachment: 'platform' as const,
      clientExtensionResults: {},
      response: {
        clientDataJSON: b64url(clientDataJSON),
        authenticatorData: b64url(authData),
        signature: b64url(new Uint8Array(signature)),
        userHandle: overrides.userHandle ?? chosen.userHandle,
      },
    };
  }

  private clientData(type: string, challenge: string, overrides: Overrides): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({
        type: overrides.type ?? type,
        challenge: overrides.challenge ?? challenge,
        origin: overrides.origin ?? this.origin,
        crossOrigin: false,
      }),
    );
  }
}
