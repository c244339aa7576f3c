/** Exactly what bcrypt writes (passlib, bcryptjs, PHP, Bun): ident, two-digit cost 04–31, 22 + 31 chars of salt and hash. */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** bcrypt's cost is a log2 work factor: 4 is the library minimum, 31 the format's maximum. */
export const MIN_BCRYPT_COST = 4;
export const MAX_BCRYPT_COST = 31;

/** The ident every runtime writes today; `$2a$` and `$2y$` (passlib, PHP) verify the same. */
export const CURRENT_IDENT = '$2b$';

export const isBcryptHash = (hash: unknown): hash is string => typeof hash === 'string' && BCRYPT_HASH.test(hash);

/** The cost (log2 rounds) a bcrypt hash was made with, or null for anything that is not one. */
export const bcryptCost = (hash: unknown): number | null => (isBcryptHash(hash) ? Number(hash.slice(4, 6)) : null);

// bcrypt's own base64 alphabet (not RFC 4648's), and its unpadded encoding of bytes.
const ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const SALT_BYTES = 16;
const DIGEST_BYTES = 23;

function encode(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const [b0 = 0, b1 = 0, b2 = 0] = [bytes[i], bytes[i + 1], bytes[i + 2]];
    out += (ALPHABET[b0 >> 2] as string) + ALPHABET[((b0 & 3) << 4) | (b1 >> 4)];
    if (i + 1 < bytes.length) out += ALPHABET[((b1 & 15) << 2) | (b2 >> 6)];
    if (i + 2 < bytes.length) out += ALPHABET[b2 & 63];
  }
  return out;
}

/**
 * A well-formed bcrypt hash of nothing: a random salt and digest at `cost`. Verifying any password against
 * it costs exactly what verifying against a real hash of that cost costs (bcrypt computes the whole digest
 * before it compares), and it never matches (2^-184). What an unknown email is checked against, so the
 * check costs the same as a wrong password, without spending a hash to make the dummy.
 */
export function randomBcryptHash(cost: number): string {
  const random = (length: number) => crypto.getRandomValues(new Uint8Array(length));
  return `${CURRENT_IDENT}${String(cost).padStart(2, '0')}$${encode(random(SALT_BYTES))}${encode(random(DIGEST_BYTES))}`;
}
